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
    # commits/s, load p50, p99, loads/s for 1 and 2 processes, each with
    # both sides measured and a ratio.
    assert len(rows) == 1 + 2 * 4, proc.stdout
    for row in rows[1:]:
        assert "×" in row, row
