"""zrs's restore path (fstool copy) reproduces files byte for byte, like Python's.

Python's copyTransactionsFrom reproduces an unpacked file exactly (checked in
test_pyside), so the copy made through zrs's tpc_begin(tid, status)/restore
must too. Packed files are left out on purpose: Python's pack points later
backpointers at the first of two records of an oid in one transaction while
restore picks the last, so not even Python's own copy of a packed file is
identical to it.
"""

import pytest
from ZODB.FileStorage import FileStorage

from pyfs.compare import assert_same_bytes


def python_copy(src, dst):
    source = FileStorage(str(src), read_only=True)
    dest = FileStorage(str(dst), create=True)
    try:
        dest.copyTransactionsFrom(source)
    finally:
        dest.close()
        source.close()


@pytest.mark.parametrize("db", ["pydb", "pydb_seed2"])
def test_fstool_copy_of_python_file_is_identical(db, request, tmp_path, run_fstool):
    src = request.getfixturevalue(db)
    dst = tmp_path / "go" / "Data.fs"
    dst.parent.mkdir()
    run_fstool("copy", src, dst)
    assert_same_bytes(src, dst)

    # And Python's copy of zrs's copy is the original again.
    again = tmp_path / "py" / "Data.fs"
    again.parent.mkdir()
    python_copy(dst, again)
    assert_same_bytes(src, again)


def test_fstool_copy_of_packed_file_keeps_the_data(pydb_packed, tmp_path, run_fstool):
    """Not byte-identical (see the module doc), but the same as Python's own copy."""
    go, py = tmp_path / "go" / "Data.fs", tmp_path / "py" / "Data.fs"
    go.parent.mkdir()
    py.parent.mkdir()
    run_fstool("copy", pydb_packed, go)
    python_copy(pydb_packed, py)
    assert_same_bytes(py, go)


def test_copies_of_go_file_agree(godb, tmp_path, run_fstool):
    """zrs and Python copy a zrs-written file to the same bytes, equal to the source."""
    go, py = tmp_path / "go" / "Data.fs", tmp_path / "py" / "Data.fs"
    go.parent.mkdir()
    py.parent.mkdir()
    run_fstool("copy", godb, go)
    python_copy(godb, py)
    assert_same_bytes(py, go)
    assert_same_bytes(godb, go)


def test_copy_refuses_existing_destination(pydb, tmp_path, run_fstool):
    dst = tmp_path / "Data.fs"
    dst.write_bytes(b"FS30")
    proc = run_fstool("copy", pydb, dst, check=False)
    assert proc.returncode == 1
    assert dst.read_bytes() == b"FS30"
