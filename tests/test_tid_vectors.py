"""The tid vectors the Go tests use must be what persistent computes today."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_tid_vectors_match_installed_persistent():
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_tids.py")],
        check=True, capture_output=True, text=True,
    ).stdout
    checked_in = (ROOT / "core" / "zodb" / "testdata" / "tids.txt").read_text()
    assert fresh.count("\n") > 1000
    assert fresh == checked_in, (
        "core/zodb/testdata/tids.txt differs from persistent's output; "
        "regenerate it with tests/vectors/gen_tids.py")
