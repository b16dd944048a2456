"""Checked-in test vectors must be what their generator prints today."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def assert_vectors_current(generator, checked_in, source, sane):
    """Run tests/vectors/GENERATOR with this venv's Python; its output must
    pass sane() (it generated what it should) and equal the file CHECKED_IN
    (relative to the repository), which SOURCE (e.g. "CPython's output")
    produced."""
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / generator)],
        check=True, capture_output=True, text=True,
    ).stdout
    assert sane(fresh), f"tests/vectors/{generator} printed too little:\n{fresh[:2000]}"
    assert fresh == (ROOT / checked_in).read_text(), (
        f"{checked_in} differs from {source}; regenerate it with tests/vectors/{generator}")
