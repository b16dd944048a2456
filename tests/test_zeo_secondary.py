"""A read-only ZEO client on a zrs secondary follows the primary's commits.

`zrs primary --zeo --replicate-to` and `zrs secondary --replicate-from
--zeo`: a writer commits on the primary, a read-only client on the
secondary's ZEO port learns of each commit by invalidateTransaction alone
(no ping). Measured over ~200 commits: the time from the start of the
writer's commit to the reader's invalidation (p95 <= 100 ms, max <= 2 s), and
right after each invalidation the reader reads the committed value, never
an older one.

With ZRS_ZEO_SERVER=runzeo the secondary is ZEO's read-only fan-out (a
runzeo serving a ClientStorage of the primary).
"""

import threading
import time

import ZODB
import transaction
from persistent.mapping import PersistentMapping
from BTrees.OOBTree import OOBTree

from zeoserver import SERVER_KIND, report, zeo  # noqa: F401 (fixture)

COMMITS = 200
P95_LIMIT = 0.100  # seconds
MAX_LIMIT = 2.0
WAIT = 10  # seconds for one invalidation before the test fails


def percentile(sorted_values, p):
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


class Arrivals:
    """Records when each invalidateTransaction has been applied by a ClientStorage."""

    def __init__(self, storage):
        self._cond = threading.Condition()
        self.at = {}  # tid -> time.monotonic() once applied
        self.order = []  # tids in arrival order
        real = storage.invalidateTransaction

        def invalidate(tid, oids):
            real(tid, oids)
            with self._cond:
                self.at[tid] = time.monotonic()
                self.order.append(tid)
                self._cond.notify_all()

        storage.invalidateTransaction = invalidate

    def wait(self, tid, timeout=WAIT):
        with self._cond:
            if not self._cond.wait_for(lambda: tid in self.at, timeout):
                return None
            return self.at[tid]


def wait_caught_up(storage, tid, what):
    deadline = time.monotonic() + WAIT
    while storage.lastTransaction() < tid:
        assert time.monotonic() < deadline, f"{what} not at {tid.hex()} after {WAIT}s"
        time.sleep(0.01)


def test_secondary_readers_follow_commits(zeo, request):
    primary = zeo(replicate=True)
    secondary = zeo.secondary(primary)
    wdb = primary.db(server_sync=False)
    wtm = transaction.TransactionManager()
    wconn = wdb.open(wtm)
    with wtm:
        wconn.root()["m"] = PersistentMapping(n=0)
        wconn.root()["t"] = OOBTree()

    rstorage = secondary.client(read_only=True)
    wait_caught_up(rstorage, wdb.storage.lastTransaction(), "the secondary's reader")
    arrivals = Arrivals(rstorage)
    rdb = ZODB.DB(rstorage)
    rtm = transaction.TransactionManager()
    rconn = rdb.open(rtm)
    with rtm:
        assert rconn.root()["m"]["n"] == 0

    latencies, stale, tids = [], [], []
    for i in range(1, COMMITS + 1):
        wtm.begin()
        wconn.root()["m"]["n"] = i
        wconn.root()["t"][i % 50] = i
        committed = time.monotonic()  # from the start of the commit: all of it counts
        wtm.commit()
        tid = wdb.storage.lastTransaction()
        tids.append(tid)
        seen = arrivals.wait(tid)
        if seen is None:
            secondary.check_running()
            secondary.fail(f"commit {i} ({tid.hex()}): no invalidation on the secondary "
                           f"within {WAIT}s")
        latencies.append(seen - committed)
        rtm.begin()  # a new snapshot: it includes tid, whose invalidation is in
        got = (rconn.root()["m"]["n"], rconn.root()["t"][i % 50])
        if got != (i, i):
            stale.append((i, tid.hex(), got))
        rtm.abort()
        if i % 4 == 0:
            time.sleep(0.005)  # not only back-to-back commits

    ordered = sorted(latencies)
    figures = {p: percentile(ordered, p) * 1000 for p in (50, 90, 95, 99)}
    report(request.config, [
        f"zeo secondary ({SERVER_KIND}): commit on the primary -> invalidation on the "
        f"secondary's reader, {COMMITS} commits: p50 {figures[50]:.1f} ms, "
        f"p90 {figures[90]:.1f} ms, p95 {figures[95]:.1f} ms, p99 {figures[99]:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"])
    # One invalidation per replicated transaction, in commit order.
    assert arrivals.order == tids, "invalidations on the secondary differ from the commits"
    assert not stale, f"stale reads after the invalidation (commit, tid, read): {stale[:10]}"
    assert figures[95] <= P95_LIMIT * 1000, f"p95 {figures[95]:.1f} ms > {P95_LIMIT * 1000} ms"
    assert ordered[-1] <= MAX_LIMIT, f"max {ordered[-1]:.3f} s > {MAX_LIMIT} s"
    rconn.close()
    rdb.close()
    wconn.close()
    wdb.close()
