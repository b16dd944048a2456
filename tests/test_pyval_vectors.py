"""The ZEO pickle vectors core/pyval's Go tests use must be what zodbpickle produces today."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_pyval_vectors_match_zodbpickle():
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_pyval.py")],
        check=True, capture_output=True, text=True,
    ).stdout
    checked_in = (ROOT / "core" / "pyval" / "testdata" / "zeo-pickles.txt").read_text()
    assert fresh.count("\npickle ") > 90 and "\npickle reply_poskeyerror " in fresh
    assert fresh == checked_in, (
        "core/pyval/testdata/zeo-pickles.txt differs from zodbpickle's output; "
        "regenerate it with tests/vectors/gen_pyval.py")


def test_extension_object_vectors_match_cpython():
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_extobj.py")],
        check=True, capture_output=True, text=True,
    ).stdout
    checked_in = (ROOT / "core" / "pyval" / "testdata" / "ext-objects.txt").read_text()
    assert fresh.count("\next ") >= 10 and "\next uuid " in fresh
    assert fresh == checked_in, (
        "core/pyval/testdata/ext-objects.txt differs from CPython's output; "
        "regenerate it with tests/vectors/gen_extobj.py")
