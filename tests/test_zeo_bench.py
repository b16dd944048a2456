"""bench/zeo.sh still runs: both servers, tiny parameters, a complete table.

The benchmark itself is not run in CI (make bench runs it); this keeps the
script from rotting. Nothing is asserted on the figures.
"""

import os
import subprocess

from conftest import REPO


def test_zeo_bench_smoke():
    env = dict(os.environ, ZEO_BENCH_SECONDS="0.5", ZEO_BENCH_OBJECTS="200",
               ZEO_BENCH_PROCS="1 2", ZEO_BENCH_SIDES="zrs python")
    proc = subprocess.run([str(REPO / "bench" / "zeo.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"bench/zeo.sh exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "—" not in line]
    measured = {(row.split(" | ")[0][2:], row.split(" | ")[1]) for row in rows[1:] if "×" in row}
    names = ["commits/s (small change, own object)", "server CPU per commit (µs)",
             "loadBefore round trip p50 (µs)", "loadBefore round trip p99 (µs)",
             "loadBefore/s, all processes", "server CPU per loadBefore (µs)"]
    # Every measurement, for 1 and 2 processes, with both sides and a ratio.
    assert measured == {(name, n) for name in names for n in ("1", "2")}, proc.stdout
