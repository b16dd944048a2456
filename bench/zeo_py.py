#!/usr/bin/env python3
"""The client side of bench/zeo.sh: one ZEO workload, run against any ZEO server.

  zeo_py.py populate ADDR OBJECTS OIDFILE
                          OBJECTS small PersistentMappings (in an OOBTree, 500 per
                          transaction) and one object per commit worker; their oids
                          are written to OIDFILE (JSON)
  zeo_py.py commit ADDR PROCS SECONDS LABEL
                          PROCS client processes, each committing a small change to
                          its own object as fast as it can for SECONDS
  zeo_py.py load ADDR PROCS SECONDS LABEL OIDFILE
                          PROCS client processes, each calling loadBefore(random oid,
                          maxtid) on its server stub for SECONDS: every call is a
                          round trip to the server (the client cache is not asked)
  zeo_py.py table RESULTS.jsonl
                          the side-by-side table (zrs against Python runzeo)

ADDR is host:port or a unix socket path. Each measurement prints one JSON
line. With ZEO_BENCH_SERVER_PID set, it also reports the server process's
CPU time (user + system, from /proc) per operation: on a small machine the
Python clients saturate the cores before either server does, and this is
what the server itself spends. Numbers only: nothing asserts on them.

Why a script and not zodbshootout: zodbshootout 0.8.0 (its last release)
does not start with the pyperf that pip installs today ("argument
--profile: conflicting option string"), and it runs its own server
processes; this script is the same idea, aimed at an address.
"""

import json
import multiprocessing
import os
import random
import sys
import time

MAXTID = b"\x7f\xff\xff\xff\xff\xff\xff\xff"
WORKERS = 64  # commit workers' objects made by populate (PROCS must not exceed it)


def parse_addr(text):
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def client(addr, **kw):
    from ZEO.ClientStorage import ClientStorage
    return ClientStorage(parse_addr(addr), wait_timeout=60, **kw)


def populate(addr, objects, oidfile):
    import transaction
    import ZODB
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    db = ZODB.DB(client(addr))
    conn = db.open()
    root = conn.root()
    root["workers"] = workers = OOBTree()
    for w in range(WORKERS):
        workers[w] = PersistentMapping(n=0)
    root["objects"] = tree = OOBTree()
    made = []
    for i in range(objects):
        obj = PersistentMapping(title=f"t{i}", body="x" * (100 + i % 400))
        tree[f"k{i:08d}"] = obj
        made.append(obj)
        if i % 500 == 499:
            transaction.commit()
    transaction.commit()
    oids = [int.from_bytes(o._p_oid, "big") for o in made]
    with open(oidfile, "w") as f:
        json.dump(oids, f)
    conn.close()
    db.close()
    print(json.dumps({"op": "populate", "objects": objects}))


def wait_start(go):
    """Say ready, then wait for the common start time; returns it."""
    ready, event, start_at = go
    ready.put(1)
    event.wait()
    time.sleep(max(0.0, start_at.value - time.time()))
    return start_at.value


def commit_worker(addr, w, go, seconds, out):
    import transaction
    import ZODB

    db = ZODB.DB(client(addr), pool_size=1)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    obj = conn.root()["workers"][w]
    obj["n"]  # loaded before the clock starts
    n, conflicts = 0, 0
    end = wait_start(go) + seconds
    while time.time() < end:
        try:
            with tm:
                obj["n"] += 1
            n += 1
        except Exception as e:  # ConflictError: never expected, objects are private
            conflicts += 1
            if conflicts > 100:
                raise RuntimeError(f"worker {w}: {e!r}")
    conn.close()
    db.close()
    out.put({"commits": n, "conflicts": conflicts})


def load_worker(addr, w, go, seconds, oids, out):
    storage = client(addr, cache_size=0)
    server = storage._server  # the stub: load_before is one server round trip
    rng = random.Random(w)
    lat = []
    end = wait_start(go) + seconds
    clock = time.perf_counter
    while time.time() < end:
        oid = oids[rng.randrange(len(oids))].to_bytes(8, "big")
        t0 = clock()
        r = server.load_before(oid, MAXTID)
        lat.append(clock() - t0)
        if not r:
            raise RuntimeError(f"loadBefore({oid.hex()}) returned {r!r}")
    storage.close()
    out.put({"latencies": lat})


def server_cpu():
    """CPU seconds used so far by the server (ZEO_BENCH_SERVER_PID), or None."""
    pid = os.environ.get("ZEO_BENCH_SERVER_PID")
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_procs(target, procs, args):
    ctx = multiprocessing.get_context("spawn")  # no client threads inherited
    out, ready, event = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    go = (ready, event, start_at)
    ps = [ctx.Process(target=target, args=(args[0], w, go) + tuple(args[1:]) + (out,))
          for w in range(procs)]
    for p in ps:
        p.start()
    for _ in ps:  # every worker connected and loaded: start together
        ready.get(timeout=600)
    start_at.value = time.time() + 0.05
    event.set()
    time.sleep(max(0.0, start_at.value - time.time()))
    cpu0 = server_cpu()
    results = [out.get(timeout=600) for _ in ps]
    cpu1 = server_cpu()
    for p in ps:
        p.join(60)
        if p.exitcode != 0:
            raise SystemExit(f"a worker exited with {p.exitcode}")
    return results, (cpu1 - cpu0 if cpu0 is not None else None)


def per_op_us(cpu, n):
    return cpu * 1e6 / n if cpu is not None and n else None


def commit(addr, procs, seconds, label):
    if procs > WORKERS:
        raise SystemExit(f"at most {WORKERS} processes")
    res, cpu = run_procs(commit_worker, procs, (addr, seconds))
    n = sum(r["commits"] for r in res)
    print(json.dumps({"op": "commit", "label": label, "procs": procs, "seconds": seconds,
                      "commits": n, "txn_per_s": n / seconds,
                      "server_cpu_us": per_op_us(cpu, n),
                      "conflicts": sum(r["conflicts"] for r in res)}))


def load(addr, procs, seconds, label, oidfile):
    with open(oidfile) as f:
        oids = json.load(f)
    res, cpu = run_procs(load_worker, procs, (addr, seconds, oids))
    lat = sorted(x for r in res for x in r["latencies"])

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e6

    print(json.dumps({"op": "load", "label": label, "procs": procs, "seconds": seconds,
                      "loads": len(lat), "loads_per_s": len(lat) / seconds,
                      "p50_us": pct(50), "p99_us": pct(99),
                      "server_cpu_us": per_op_us(cpu, len(lat))}))


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {(r["op"], r["label"], r["procs"]): r for r in rows if r["op"] in ("commit", "load")}
    procs = sorted({r["procs"] for r in rows if "procs" in r})

    def fmt(x):
        return "—" if x is None else ("%.0f" % x if x >= 100 else "%.1f" % x)

    def line(name, key, op, n, better):
        z = (by.get((op, "zrs", n)) or {}).get(key)
        p = (by.get((op, "python", n)) or {}).get(key)
        ratio = "%.2f×" % (z / p) if z is not None and p else "—"
        return f"| {name} | {n} | {fmt(z)} | {fmt(p)} | {ratio} ({better}) |"

    out = ["| measurement | client processes | zrs | Python runzeo | zrs / Python |",
           "|---|---|---|---|---|"]
    for n in procs:
        out.append(line("commits/s (small change, own object)", "txn_per_s", "commit", n,
                        "higher is better"))
        out.append(line("server CPU per commit (µs)", "server_cpu_us", "commit", n,
                        "lower is better"))
    for n in procs:
        out.append(line("loadBefore round trip p50 (µs)", "p50_us", "load", n, "lower is better"))
        out.append(line("loadBefore round trip p99 (µs)", "p99_us", "load", n, "lower is better"))
        out.append(line("loadBefore/s, all processes", "loads_per_s", "load", n,
                        "higher is better"))
        out.append(line("server CPU per loadBefore (µs)", "server_cpu_us", "load", n,
                        "lower is better"))
    print("\n".join(out))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "populate":
        populate(args[0], int(args[1]), args[2])
    elif cmd == "commit":
        commit(args[0], int(args[1]), float(args[2]), args[3])
    elif cmd == "load":
        load(args[0], int(args[1]), float(args[2]), args[3], args[4])
    elif cmd == "table":
        table(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
