#!/usr/bin/env python3
"""zc.zrs 3.1.0 side of bench/repl.sh (run with .venv-zrs/bin/python).

    repl_py.py primary DATAFS HOST:PORT
        serve DATAFS with a zc.zrs Primary (no ZODB.DB: nothing is
        committed); print "ready" once listening; stop at stdin EOF.
    repl_py.py secondary DATAFS HOST:PORT LABEL --source SOURCE
        replicate into the empty DATAFS with a zc.zrs Secondary until it has
        SOURCE's last transaction, then print one JSON line like replbench
        catchup (MB = 10**6 bytes of SOURCE).
    repl_py.py table RESULTS.jsonl
        print the side-by-side table of every result line (any Python 3).

Numbers only; bench/repl.sh compares them.
"""

import argparse
import json
import os
import sys
import time



def addr(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def primary(a):
    import zc.zrs.primary
    from ZODB.FileStorage import FileStorage
    p = zc.zrs.primary.Primary(FileStorage(a.datafs), addr(a.addr))
    deadline = time.monotonic() + 60
    while getattr(p, "_listener", None) is None:
        if time.monotonic() > deadline:
            sys.exit("primary: not listening after 60 s")
        time.sleep(0.01)
    print("ready", flush=True)
    sys.stdin.read()
    p.close()


def secondary(a):
    import zc.zrs.secondary
    from ZODB.FileStorage import FileStorage
    src = FileStorage(a.source, read_only=True)
    target = src.lastTransaction()
    size = os.path.getsize(a.source)
    src.close()
    start = time.monotonic()
    s = zc.zrs.secondary.Secondary(FileStorage(a.datafs), addr(a.addr), reconnect_delay=0.1)
    while s.lastTransaction() < target:
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    s.close()
    print(json.dumps({"op": "catchup", "label": a.label, "bytes": size,
                      "seconds": round(elapsed, 3), "mb_s": round(size / 1e6 / elapsed, 3)}), flush=True)


def table(a):
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    by = {(r["op"], r.get("label")): r for r in rows}

    def fmt(x):
        return "—" if x is None else ("%.1f" % x if x >= 10 else "%.2f" % x)

    def verdict(ok):
        return "met" if ok else "**not met**"

    out = ["| measurement | zrs | zc.zrs | zrs / zc.zrs | target |", "|---|---|---|---|---|"]
    pp = (by.get(("catchup", "zc.zrs → zc.zrs")) or {}).get("mb_s")
    for proto in PROTOS:
        r = by.get(("catchup", "zrs → zrs (%s)" % proto))
        if not r:
            continue
        zz = r["mb_s"]
        ratio = zz / pp if pp else None
        out.append("| full catch-up over %s, MB/s | %s | %s | %s | ≥ 200 MB/s and ≥ 5× — %s |" % (
            proto, fmt(zz), fmt(pp), "%.1f×" % ratio if ratio else "—",
            verdict(zz >= 200 and (ratio or 0) >= 5)))
    for label in ("zc.zrs → zrs", "zrs → zc.zrs"):
        r = by.get(("catchup", label))
        if r:
            out.append("| catch-up %s, MB/s | %s | | %s | |" % (
                label, fmt(r["mb_s"]), "%.1f× zc.zrs → zc.zrs" % (r["mb_s"] / pp) if pp else "—"))
    for proto in PROTOS:
        r = by.get(("lag", "zrs → zrs (%s)" % proto))
        if r:
            out.append("| lag at %g commits/s over %s, p50 / p90 / p99 / max (ms) | %s / %s / %s / %s | | | p99 ≤ 5 ms — %s |" % (
                r["rate"], proto, fmt(r["p50_ms"]), fmt(r["p90_ms"]), fmt(r["p99_ms"]), fmt(r["max_ms"]),
                verdict(r["p99_ms"] <= 5)))
            out.append("| … primary commit latency meanwhile, p50 / p99 (ms) | %s / %s | | | |" % (
                fmt(r["commit_p50_ms"]), fmt(r["commit_p99_ms"])))
    for proto in PROTOS:
        r = by.get(("resume", "zrs → zrs (%s)" % proto))
        if r:
            out.append("| resume 1 txn behind at the end of a %.1f GB file over %s (%d trials): first byte p50 / max (ms) | %s / %s | | | < 10 ms — %s |" % (
                r["bytes"] / 1e9, proto, r["trials"], fmt(r["first_byte_p50_ms"]), fmt(r["first_byte_max_ms"]),
                verdict(r["first_byte_max_ms"] < 10)))
            out.append("| … that transaction applied, p50 / max (ms) | %s / %s | | | |" % (
                fmt(r["applied_p50_ms"]), fmt(r["applied_max_ms"])))
    for proto in PROTOS:
        r = by.get(("rss", "zrs primary (%s)" % proto))
        if r:
            out.append("| primary RSS, %d secondaries catching up at once over %s, max (MB) | %s (idle %s) | | | < 100 MB — %s |" % (
                r["secondaries"], proto, fmt(r["max_rss_mb"]), fmt(r["idle_rss_mb"]), verdict(r["max_rss_mb"] < 100)))
            out.append("| … their aggregate catch-up over %.0f s, MB/s (%d of %d caught up) | %s | | | |" % (
                r["seconds"], r["caught_up"], r["secondaries"], fmt(r["aggregate_mb_s"])))
    print("\n".join(out))


PROTOS = ("zrs2", "zrs3")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("primary")
    pp.add_argument("datafs")
    pp.add_argument("addr")
    sp = sub.add_parser("secondary")
    sp.add_argument("datafs")
    sp.add_argument("addr")
    sp.add_argument("label")
    sp.add_argument("--source", required=True)
    tp = sub.add_parser("table")
    tp.add_argument("results")
    a = p.parse_args(argv)
    {"primary": primary, "secondary": secondary, "table": table}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
