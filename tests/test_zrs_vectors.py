"""The zc.zrs vectors the Go tests use must be what CPython and ZODB produce today."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_zrs_vectors_match_cpython():
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_zrs.py")],
        check=True, capture_output=True, text=True,
    ).stdout
    checked_in = (ROOT / "core" / "zrsproto" / "testdata" / "vectors.txt").read_text()
    assert fresh.count("\next ") > 300 and "\nstream plain " in fresh
    assert fresh == checked_in, (
        "core/zrsproto/testdata/vectors.txt differs from CPython's output; "
        "regenerate it with tests/vectors/gen_zrs.py")
