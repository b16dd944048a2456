"""The Python peers themselves: these run without any Go code.

They pin down the facts the interoperability tests rely on, so that a failure
there points at zrs and not at a wrong assumption about Python.
"""

import json
import logging
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from ZODB.FileStorage import FileStorage
from ZODB.scripts.fstest import check as fstest_check

from pyfs.compare import assert_same_bytes
from pyfs.dump import dump, parse_lines, to_line
from pyfs.fsfile import set_status, txn_positions
from pyfs.gen import generate

TESTS = Path(__file__).resolve().parent


def features(path):
    c = Counter()
    for t in dump(path):
        c["txns"] += 1
        c["status " + t["status"]] += 1
        c["empty"] += not t["records"]
        c["user base64"] += isinstance(t["user"], dict)
        c["description base64"] += isinstance(t["description"], dict)
        c["non-ascii user"] += isinstance(t["user"], str) and not t["user"].isascii()
        c["extension"] += t["extension"] is not None
        c["int key"] += isinstance(t["extension"], dict) and "7" in t["extension"]
        oids = [r["oid"] for r in t["records"]]
        c["oid twice in a txn"] += len(oids) != len(set(oids))
        for r in t["records"]:
            c["records"] += 1
            c["no data"] += r["sha1"] is None
            c["backpointer"] += r["data_txn"] is not None
    return c


def test_generator_is_deterministic(tmp_path):
    a, b = tmp_path / "a" / "Data.fs", tmp_path / "b" / "Data.fs"
    a.parent.mkdir()
    b.parent.mkdir()
    generate(a, txns=150, seed=5)
    generate(b, txns=150, seed=5)
    assert_same_bytes(a, b)


def test_generated_database_covers_the_hard_cases(pydb):
    c = features(pydb)
    assert c["txns"] >= 500, c
    for feature in ["empty", "user base64", "description base64", "non-ascii user", "extension",
                    "int key", "oid twice in a txn", "no data", "backpointer"]:
        assert c[feature] > 0, f"no {feature!r} in the generated database: {c}"
    assert c["records"] > 5000, c
    fstest_check(str(pydb))


def test_packed_database_has_packed_transactions(pydb_packed):
    c = features(pydb_packed)
    assert c["status p"] > 0 and c["status  "] > 0, c
    fstest_check(str(pydb_packed))


def test_pydump_cli_prints_the_dump(pydb):
    out = subprocess.run([sys.executable, str(TESTS / "pydump.py"), str(pydb)], check=True,
                         capture_output=True, text=True).stdout
    assert parse_lines(out) == [json.loads(to_line(t)) for t in dump(pydb)]


def test_gen_pydb_cli(tmp_path):
    path = tmp_path / "Data.fs"
    out = subprocess.run([sys.executable, str(TESTS / "gen_pydb.py"), str(path), "--txns", "40"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["txns"] >= 40


def python_copy(src, dst):
    """copyTransactionsFrom, as ZODB's own tools replicate a FileStorage."""
    source = FileStorage(str(src), read_only=True)
    dest = FileStorage(str(dst), create=True)
    try:
        dest.copyTransactionsFrom(source)
    finally:
        dest.close()
        source.close()


def test_python_copy_is_byte_identical(pydb, tmp_path):
    """The premise of the copy test: restore() reproduces an unpacked file exactly."""
    dst = tmp_path / "Data.fs"
    python_copy(pydb, dst)
    assert_same_bytes(pydb, dst)


def test_python_crash_recovery_rules(pydb, tmp_path):
    """What Python does with a torn last transaction: the rules test_crash_recovery holds zrs to."""
    pos, end = txn_positions(pydb)[-1]
    logging.getLogger("ZODB.FileStorage").setLevel(logging.ERROR)
    try:
        for cut, tr0 in [(pos, False), (pos + 10, False), (pos + 23, True), (end - 1, True)]:
            path = tmp_path / str(cut) / "Data.fs"
            path.parent.mkdir()
            with open(pydb, "rb") as src, open(path, "wb") as dst:
                dst.write(src.read(cut))
            FileStorage(str(path)).close()
            assert path.stat().st_size == pos, cut
            assert (path.parent / "Data.fs.tr0").exists() == tr0, cut
        path = tmp_path / "c" / "Data.fs"
        path.parent.mkdir()
        shutil.copyfile(pydb, path)
        set_status(path, pos, b"c")
        FileStorage(str(path)).close()
        assert path.stat().st_size == pos
        assert (path.parent / "Data.fs.tr0").stat().st_size == end - pos
    finally:
        logging.getLogger("ZODB.FileStorage").setLevel(logging.NOTSET)
