"""Print tid vectors computed by persistent's own TimeStamp.

The output is checked in as core/zodb/testdata/tids.txt; the Go tests read
it, and tests/test_tid_vectors.py regenerates it with the installed
persistent package and fails if the checked-in copy differs.

Line forms (hex tids are 16 lowercase digits):
  make Y M D h m SECONDS TID       TimeStamp(Y, M, D, h, m, SECONDS).raw()
  epoch SECONDS TID                TimeStamp(*gmtime(t)[:5], t % 60), as ZODB makes new tids
  later TID PREV RESULT            TimeStamp(TID).laterThan(TimeStamp(PREV)).raw()
  str TID TEXT                     str(TimeStamp(TID))
  time TID FLOAT                   TimeStamp(TID).timeTime()
"""
import random
import sys
import time

from persistent.timestamp import TimeStamp


def hx(raw):
    return raw.hex()


def main(out):
    rnd = random.Random(20261125)
    w = out.write
    fixed = [
        (1900, 1, 1, 0, 0, 0.0),
        (2000, 2, 29, 23, 59, 59.999999),
        (2026, 11, 25, 13, 50, 5.955247),
        (1999, 12, 31, 23, 59, 59.99999999),
        (2038, 1, 19, 3, 14, 7.5),
    ]
    for _ in range(300):
        fixed.append((rnd.randint(1900, 2200), rnd.randint(1, 12), rnd.randint(1, 28),
                      rnd.randint(0, 23), rnd.randint(0, 59), rnd.uniform(0, 60)))
    for y, mo, d, h, mi, s in fixed:
        w("make %d %d %d %d %d %r %s\n" % (y, mo, d, h, mi, s, hx(TimeStamp(y, mo, d, h, mi, s).raw())))
    for _ in range(300):
        t = rnd.uniform(0, 4102444800.0)
        ts = TimeStamp(*time.gmtime(t)[:5] + (t % 60,))
        w("epoch %r %s\n" % (t, hx(ts.raw())))
    tids = ["040d40fe1968b7dd", "040d40feffffffff", "0000000000000000", "0000000000000001"]
    # ends of minutes, hours, days, months (incl. leap and non-leap February) and years
    for y, mo, d, h, mi in [(2000, 2, 29, 23, 59), (2001, 2, 28, 23, 59), (2026, 12, 31, 23, 59),
                            (2026, 4, 30, 23, 59), (2026, 1, 31, 23, 59), (2026, 11, 25, 13, 59)]:
        tids.append(hx(TimeStamp(y, mo, d, h, mi, 0.0).raw()[:4]) + "ffffffff")
    for _ in range(100):
        tids.append("%016x" % rnd.randint(0x0300000000000000, 0x0500000000000000))
    for a in tids:
        for b in (tids[rnd.randrange(len(tids))], a):
            r = TimeStamp(bytes.fromhex(a)).laterThan(TimeStamp(bytes.fromhex(b)))
            w("later %s %s %s\n" % (a, b, hx(r.raw())))
    for a in tids:
        if a == "0000000000000000":
            continue
        ts = TimeStamp(bytes.fromhex(a))
        w("str %s %s\n" % (a, str(ts)))
        w("time %s %r\n" % (a, ts.timeTime()))


if __name__ == "__main__":
    main(sys.stdout)
