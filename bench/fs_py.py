#!/usr/bin/env python3
"""The Python side of bench/fs.sh: the same operations on Python's FileStorage.

  fs_py.py gen PATH OBJECTS [PROFILE]
                                 write a database of OBJECTS objects with ZODB:
                                 "typical" (default): small objects (median ~250 B pickle)
                                 added to an OOBTree, 1-20 per transaction, like a web
                                 application's commits; "large": ~1.5 kB objects in
                                 transactions of 1000; a tenth modified once more
  fs_py.py iterate PATH          read every transaction and every record's data
  fs_py.py load PATH N           N loads of random existing oids (fixed seed)
  fs_py.py commit PATH N [T]     N transactions of one small new object, each fsynced,
                                 from T threads at once (default 1)
  fs_py.py table GO.json PY.json print the side-by-side table

Each operation prints one JSON line with the same keys as `fstool bench`.
Numbers only: nothing asserts on them.
"""

import json
import os
import random
import sys
import threading
import time

import transaction
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from ZODB._compat import dumps
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileIterator, FileStorage
from ZODB.POSException import POSKeyError
from ZODB.utils import z64

import ZODB

BATCH = 1000  # objects per transaction while generating


def gen(path, objects, profile="typical"):
    if profile == "large":
        return gen_large(path, objects)
    rng = random.Random(1)
    db = ZODB.DB(path)
    conn = db.open()
    root = conn.root()
    root["tree"] = tree = OOBTree()
    transaction.commit()
    made = []
    while len(made) < objects:
        for _ in range(min(rng.randint(1, 20), objects - len(made))):
            size = min(int(rng.lognormvariate(5.2, 0.8)), 8000)
            obj = PersistentMapping({"title": "t%d" % len(made), "body": "x" * size,
                                     "when": rng.random()})
            tree["k%08d" % rng.randrange(10**8)] = obj
            made.append(obj)
        transaction.get().setUser("bench")
        transaction.get().note("add items")
        transaction.commit()
    for i, obj in enumerate(rng.sample(made, len(made) // 10)):
        obj["title"] = "changed"
        if i % 5 == 4:
            transaction.commit()
    transaction.commit()
    conn.close()
    db.close()
    return {"op": "gen", "profile": profile, "objects": objects, "bytes": os.path.getsize(path)}


def gen_large(path, objects):
    rng = random.Random(1)
    db = ZODB.DB(path)
    conn = db.open()
    root = conn.root()
    made = []
    while len(made) < objects:
        folder = PersistentMapping()
        root["f%05d" % len(root)] = folder
        for i in range(min(BATCH, objects - len(made))):
            obj = PersistentMapping({"n": i, "text": "x" * rng.randrange(1000, 2000),
                                     "when": rng.random()})
            folder["o%d" % i] = obj
            made.append(obj)
        transaction.get().note("bench batch")
        transaction.commit()
    for i, obj in enumerate(rng.sample(made, len(made) // 10)):
        obj["n"] = -1
        if i % BATCH == BATCH - 1:
            transaction.commit()
    transaction.commit()
    conn.close()
    db.close()
    return {"op": "gen", "profile": "large", "objects": objects, "bytes": os.path.getsize(path)}


def iterate(path):
    start = time.perf_counter()
    records = 0
    it = FileIterator(path)
    for txn in it:
        for rec in txn:
            rec.data  # already read by the iterator; keep it honest
            records += 1
    it.close()
    secs = time.perf_counter() - start
    size = os.path.getsize(path)
    return {"op": "iterate", "bytes": size, "records": records, "seconds": secs,
            "mb_per_s": size / 1e6 / secs}


def load(path, n):
    st = FileStorage(path, read_only=True)
    try:
        oids = []
        for oid in st._index.keys():
            try:
                st.load(oid)
                oids.append(oid)
            except POSKeyError:
                pass
        rng = random.Random(1)
        picks = [oids[rng.randrange(len(oids))] for _ in range(n)]
        start = time.perf_counter()
        for oid in picks:
            st.load(oid)
        secs = time.perf_counter() - start
    finally:
        st.close()
    return {"op": "load", "n": n, "seconds": secs, "us_per_op": secs * 1e6 / n}


def commit(path, n, threads=1):
    """n commits of one new small object, from `threads` threads at once
    (n split between them), as a ZEO server's clients commit."""
    st = FileStorage(path)
    data = dumps(PersistentMapping, 3) + dumps(
        {"data": {"payload": "0123456789abcdef0123456789abcdef0123456789"}}, 3)

    def work(count):
        for _ in range(count):
            t = TransactionMetaData("", "bench")
            st.tpc_begin(t)
            st.store(st.new_oid(), z64, data, "", t)
            st.tpc_vote(t)
            st.tpc_finish(t)  # flush + fsync, as every ZODB commit

    try:
        workers = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        secs = time.perf_counter() - start
    finally:
        st.close()
    n = n // threads * threads
    op = "commit" if threads == 1 else f"commit_x{threads}"
    return {"op": op, "n": n, "seconds": secs, "txn_per_s": n / secs}


ROWS = [("iterate", "mb_per_s", "MB/s", True), ("iterate", "records_per_s", "rec/s", True),
        ("load", "us_per_op", "µs/op", False), ("commit", "txn_per_s", "txn/s", True),
        ("commit_x8", "txn_per_s", "txn/s", True)]


# Go-only rows printed after the row of the operation they vary.
EXTRA = {"iterate": ("iterate_own", "read")}


def table(go_file, py_file):
    """Rows for the operations present in both files, with Go's speed-up."""
    def read(p):
        # An operation measured several times counts with its best run
        # (the least time): what the code can do, not the machine's noise.
        rows = {}
        for r in map(json.loads, open(p)):
            op = r.get("op")
            if op and (op not in rows or r["seconds"] < rows[op]["seconds"]):
                rows[op] = r
        for op in ("iterate", "iterate_own"):
            if op in rows:
                rows[op]["records_per_s"] = rows[op]["records"] / rows[op]["seconds"]
        return rows

    go, py = read(go_file), read(py_file)
    lines = [f"{'operation':<12} {'unit':<6} {'zrs (Go)':>12} {'ZODB (Python)':>14} {'zrs speed-up':>13}"]
    for op, key, unit, higher_is_better in ROWS:
        if op not in go or op not in py:
            continue
        # Go's variants of an operation (iterate_own beside iterate, the
        # read floor) are compared with Python's one figure.
        for gop in [op] + [o for o in EXTRA.get(op, ()) if o in go and key in go[o]]:
            g, p = go[gop][key], py[op][key]
            ratio = g / p if higher_is_better else p / g
            lines.append(f"{gop:<12} {unit:<6} {g:>12.1f} {p:>14.1f} {ratio:>12.2f}x")
    if "fsync" in go:
        lines.append(f"{'(disk floor: write + fsync, one at a time)':<44} {go['fsync']['ops_per_s']:>8.1f} ops/s")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    op, args = argv[1], argv[2:]
    if op == "table":
        print(table(*args))
        return 0
    fn = {"gen": gen, "iterate": iterate, "load": load, "commit": commit}[op]
    rest = [int(a) if a.isdigit() else a for a in args[1:]]
    result = fn(args[0], *rest)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
