"""Python's ZODB reads and extends files that zrs wrote (fstool write)."""

import hashlib
import logging

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.broken import Broken
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.scripts.fstest import check as fstest_check

from conftest import copy_fs
from pyfs.compare import assert_same_dump
from pyfs.dump import dump, parse_lines
from pyfs.fsfile import DATA_HEADER


def test_write_leaves_an_index(godb):
    assert godb.stat().st_size > 100
    assert (godb.parent / "Data.fs.index").exists(), "fstool write left no Data.fs.index"


def test_python_opens_read_write_with_the_go_index(godb, tmp_path, caplog):
    """Python accepts the .index zrs wrote (no rebuild) and it equals a rebuilt one."""
    path = copy_fs(godb, tmp_path / "go" / "Data.fs", with_index=True)
    caplog.set_level(logging.WARNING, logger="ZODB")
    st = FileStorage(str(path))
    try:
        used = st._used_index  # ZODB's own marker: 1 when _restore_index() succeeded
        from_go = dict(st._index.items())
        size = st.getSize()
    finally:
        st.close()
    assert used == 1, f"Python rebuilt the index; log:\n{caplog.text}"
    assert not [r for r in caplog.records if "index" in r.getMessage().lower()], caplog.text
    assert size == godb.stat().st_size

    rebuilt_path = copy_fs(godb, tmp_path / "rebuilt" / "Data.fs")
    st = FileStorage(str(rebuilt_path), read_only=True)
    try:
        rebuilt = dict(st._index.items())
    finally:
        st.close()
    assert from_go == rebuilt


def test_python_iterator_matches_zrs_dump(godb, run_zrs):
    zrs = parse_lines(run_zrs("fs", "dump", "--json", godb).stdout)
    assert_same_dump(list(dump(godb)), zrs)


def python_loads(path):
    """Every oid in the index: the current data's sha1 and serial, as Python loads it."""
    st = FileStorage(str(path), read_only=True)
    try:
        out = {}
        for oid in st._index.keys():
            try:
                data, serial = st.load(oid)
                out[oid.hex()] = {"tid": serial.hex(), "sha1": hashlib.sha1(data).hexdigest()}
            except POSKeyError:  # deleted / creation undone: the record the index points to
                h = st._read_data_header(st._lookup_pos(oid), oid)
                out[oid.hex()] = {"tid": h.tid.hex(), "sha1": None}
        return out
    finally:
        st.close()


def test_load_matches_fstool_load(godb, run_fstool):
    go = {}
    for line in parse_lines(run_fstool("load", godb).stdout):
        go[line["oid"]] = {"tid": line["tid"], "sha1": line["sha1"]}
    py = python_loads(godb)
    assert sorted(go) == sorted(py), "fstool load and Python's index list different oids"
    wrong = {oid: (py[oid], go[oid]) for oid in py if py[oid] != go[oid]}
    assert not wrong, f"{len(wrong)} oids load differently (python, zrs): {list(wrong.items())[:5]}"


def test_pydb_load_matches_fstool_load(pydb, run_fstool):
    """The same on the Python-written file: zrs resolves backpointers and deletions like Python."""
    go = {line["oid"]: {"tid": line["tid"], "sha1": line["sha1"]}
          for line in parse_lines(run_fstool("load", pydb).stdout)}
    py = python_loads(pydb)
    assert sorted(go) == sorted(py)
    wrong = {oid: (py[oid], go[oid]) for oid in py if py[oid] != go[oid]}
    assert not wrong, f"{len(wrong)} oids load differently (python, zrs): {list(wrong.items())[:5]}"


def test_python_fstest_passes(godb):
    fstest_check(str(godb))


def test_zodb_opens_and_reads_every_object(godb, tmp_path):
    path = copy_fs(godb, tmp_path / "Data.fs", with_index=True)
    db = ZODB.DB(str(path))
    try:
        conn = db.open()
        root = conn.root()
        assert isinstance(root, PersistentMapping)
        assert len(root) > 0
        st = db.storage
        loaded = 0
        for oid in st._index.keys():
            try:
                st.load(oid)
            except POSKeyError:
                continue
            obj = conn.get(oid)
            obj._p_activate()
            assert not isinstance(obj, Broken), f"oid {oid.hex()} unpickles as {obj!r}"
            loaded += 1
        assert loaded > 1
        conn.close()
    finally:
        db.close()


def test_python_commit_on_go_file_then_zrs_reads_it(godb, tmp_path, run_zrs, run_fstool):
    """Python appends to a Go-written file; zrs verifies, dumps and loads the result."""
    path = copy_fs(godb, tmp_path / "Data.fs", with_index=True)
    db = ZODB.DB(str(path))
    try:
        conn = db.open()
        conn.root()["from python"] = PersistentMapping({"snow": "☃", "n": 1})
        transaction.get().setUser("jürgen ☃")
        transaction.get().note("appended by Python")
        transaction.get().setExtendedInfo("k", [1, 2.5, "v"])
        transaction.commit()
        conn.close()
    finally:
        db.close()
    run_zrs("fs", "verify", path)
    zrs = parse_lines(run_zrs("fs", "dump", "--json", path).stdout)
    assert_same_dump(list(dump(path)), zrs)
    assert zrs[-1]["description"] == "appended by Python"
    # zrs opens read-write using the index Python rewrote on close, and loads the new object.
    out = parse_lines(run_fstool("open", path).stdout)
    assert out[-1]["size"] == path.stat().st_size
    go = {line["oid"]: line for line in parse_lines(run_fstool("load", path).stdout)}
    py = python_loads(path)
    assert {o: {"tid": v["tid"], "sha1": v["sha1"]} for o, v in go.items()} == py
