#!/usr/bin/env python3
"""A zc.zrs 3.1.0 Primary around a FileStorage, driven through stdin.

Usage: .venv-zrs/bin/python tests/zrspeer/primary.py DATAFS ADDR [--seed N]

ADDR: "port", "host:port" (port 0 picks a free one) or a Unix socket path
(anything containing "/"). Once listening it prints "ready ADDR" with the
address actually bound. Then one command per stdin line, one reply line each:

  commit N    commit N transactions of varied objects through ZODB.DB
              over the Primary; reply: the last tid (hex)
  undo        undo the most recent undoable transaction; reply: its tid
  delete      create an object, unlink it, then drop it with deleteObject
              in a manual two-phase commit; reply: the last tid
  objext      commit one change whose transaction extension holds objects
              (datetime, Decimal, set, UUID, OrderedDict, deque), as an
              application using FileStorage directly may; reply: its tid
  lasttid     reply: lastTransaction() (hex)
  quit        close the DB (and so the Primary: every connected secondary
              is sent what was committed first); reply: "bye"

An unknown command or a failure replies "error ..." and the script keeps
going. Logs go to stderr.
"""

import argparse
import collections
import datetime
import decimal
import random
import uuid
import sys
import time

import transaction
from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

import ZODB
import zc.zrs.primary
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage

from common import commands, format_addr, parse_addr, reply, setup_logging

USERS = ["", "alice", "jürgen ☃", "管理者"]
NOTES = ["", "déjà vu", "edit ✎", "bulk insert", "日本語のメモ"]


class Workload:
    """Varied, seed-determined commits through a Connection."""

    def __init__(self, db, seed):
        self.db = db
        self.rng = random.Random(seed)
        self.tm = transaction.TransactionManager()
        self.conn = db.open(self.tm)
        root = self.conn.root()
        if "tree" not in root:
            root["tree"] = OOBTree()
            root["maps"] = PersistentMapping()
            root["trash"] = PersistentMapping()
            self.tm.get().note("zrspeer setup")
            self.tm.commit()
        self.root = root
        self.names = 0

    def value(self, depth=0):
        r = self.rng
        kind = r.randrange(9 if depth < 2 else 6)
        if kind == 0:
            return r.randrange(-1000, 1000)
        if kind == 1:
            return r.choice([2**70, -(2**63), 0.5, 1e100, None, True])
        if kind == 2:
            return r.choice(["", "snow ☃", "中文", "a\nb\t\"q\"\\"]) * r.randrange(1, 4)
        if kind == 3:
            return bytes(r.randrange(256) for _ in range(r.randrange(40)))
        if kind == 4:
            return "long " * r.randrange(5, 400)
        if kind == 5:
            return "s%d" % r.randrange(10**6)
        if kind == 6:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if kind == 7:
            return tuple(self.value(depth + 1) for _ in range(r.randrange(4)))
        return {"k%d" % i: self.value(depth + 1) for i in range(r.randrange(4))}

    def metadata(self):
        r = self.rng
        t = self.tm.get()
        user = r.choice(USERS)
        if user:
            t.setUser(user)
        note = r.choice(NOTES)
        if note:
            t.note(note)
        if r.random() < 0.4:
            t.setExtendedInfo("k", "v")
            t.setExtendedInfo("n", r.randrange(10**6))
            if r.random() < 0.5:
                t.setExtendedInfo("nested", {"a": [1, (2, "x")], "b": b"\x00\xff",
                                             "f": 1.5, "big": 2**70, "none": None})

    def object_extension(self):
        self.root["maps"][self.name()] = PersistentMapping({"when": "now"})
        t = self.tm.get()
        t.note("objects in the extension")
        t.setExtendedInfo("when", datetime.datetime(2026, 11, 26, 9, 30, 5, 123456,
                                                    tzinfo=datetime.timezone.utc))
        t.setExtendedInfo("day", datetime.date(2026, 11, 26))
        t.setExtendedInfo("amount", decimal.Decimal("-12.50"))
        t.setExtendedInfo("tags", {"ops"})
        t.setExtendedInfo("frozen", frozenset(["x"]))
        t.setExtendedInfo("request", uuid.UUID(int=2**120 + 7))
        t.setExtendedInfo("ordered", collections.OrderedDict([("b", 1), ("a", [2, 3])]))
        t.setExtendedInfo("recent", collections.deque(["x", "y"], maxlen=10))
        self.tm.commit()

    def name(self):
        self.names += 1
        return "n%06d" % self.names

    def one(self):
        r = self.rng
        kind = r.randrange(4)
        if kind == 0:  # many keys: bucket splits, several records per txn
            tree = self.root["tree"]
            for _ in range(r.randrange(20, 80)):
                tree["key%07d" % r.randrange(10**7)] = self.value()
        elif kind == 1:
            m = PersistentMapping({"k%d" % i: self.value() for i in range(r.randrange(1, 6))})
            self.root["maps"][self.name()] = m
            if r.random() < 0.3:
                m["list"] = PersistentList(self.value() for _ in range(4))
        else:
            maps = self.root["maps"]
            if not maps:
                maps[self.name()] = PersistentMapping()
            for name in r.sample(sorted(maps), min(len(maps), r.randrange(1, 4))):
                maps[name]["k%d" % r.randrange(8)] = self.value()
                if r.random() < 0.2:
                    maps[name]["ref"] = maps[r.choice(sorted(maps))]
        self.metadata()
        self.tm.commit()

    def undo(self):
        self.db.undo(self.db.undoLog(0, 1)[0]["id"], self.tm.get())
        self.tm.get().note("undo ↶")
        self.tm.commit()

    def delete(self, storage):
        trash = self.root["trash"]
        name = self.name()
        trash[name] = PersistentMapping({"doomed": self.value()})
        self.tm.commit()
        oid = trash[name]._p_oid
        del trash[name]
        self.tm.commit()
        serial = storage.load(oid)[1]
        manual_txn(storage, b"gc \xff not utf-8", b"deleteObject", {"gc": True},
                   lambda t: storage.deleteObject(oid, serial, t))

    def close(self):
        self.tm.abort()
        self.conn.close()


def manual_txn(storage, user, description, extension, body):
    t = TransactionMetaData(user, description, extension)
    storage.tpc_begin(t)
    body(t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)


def wait_listening(primary, timeout=30):
    """zc.zrs starts listening in its reactor thread; wait for the listener."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listener = getattr(primary, "_listener", None)
        if listener is not None:
            return listener
        time.sleep(0.01)
    raise SystemExit("primary: not listening after %ds (see the log above)" % timeout)


def bound_addr(listener, addr):
    if isinstance(addr, str):
        return addr
    host = listener.getHost()
    return (host.host, host.port)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datafs")
    p.add_argument("addr")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging("primary")

    addr = parse_addr(a.addr, "")
    primary = zc.zrs.primary.Primary(FileStorage(a.datafs), addr)
    listener = wait_listening(primary)
    db = ZODB.DB(primary)
    work = Workload(db, a.seed)
    reply("ready", format_addr(bound_addr(listener, addr)))

    def last():
        return primary.lastTransaction().hex()

    for cmd, args in commands():
        try:
            if cmd == "commit":
                for _ in range(int(args[0]) if args else 1):
                    work.one()
                reply(last())
            elif cmd == "undo":
                work.undo()
                reply(last())
            elif cmd == "delete":
                work.delete(primary)
                reply(last())
            elif cmd == "objext":
                work.object_extension()
                reply(last())
            elif cmd == "lasttid":
                reply(last())
            elif cmd == "quit":
                break
            else:
                reply("error unknown command", cmd)
        except Exception as e:  # keep serving: the test sees the error line
            work.tm.abort()
            reply("error", type(e).__name__, str(e).replace("\n", " "))
            import traceback
            traceback.print_exc()
    work.close()
    db.close()  # closes the Primary: it sends what is committed, then disconnects
    reply("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
