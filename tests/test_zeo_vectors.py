"""The ZEO wire vectors core/zeo's codec tests use must be what zodbpickle produces today
for the captured messages, at exactly the captured lengths (gen_zeo.py asserts that)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_zeo_vectors_match_captures():
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_zeo.py")],
        check=True, capture_output=True, text=True,
    ).stdout
    checked_in = (ROOT / "core" / "zeo" / "testdata" / "transcripts.txt").read_text()
    assert fresh.count("\nwire Z ") > 150 and fresh.count("\nwire M ") > 80
    assert fresh == checked_in, (
        "core/zeo/testdata/transcripts.txt differs from the regenerated vectors; "
        "regenerate it with tests/vectors/gen_zeo.py")
