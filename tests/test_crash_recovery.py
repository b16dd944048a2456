"""Opening a file with a torn or unfinished last transaction: zrs must do what Python does.

For every byte offset inside the last transaction, the file is cut there; a
file with the last transaction's status left at 'c' (voted, never finished) is
tried too, with and without earlier .trN files. Python (FileStorage open +
close, all in this process) and zrs (one `fstool open` call for all cases)
each recover their own copy; the resulting Data.fs bytes and the .trN files
(names and contents) must be the same.
"""

import logging
import struct
from pathlib import Path

import pytest
from persistent.mapping import PersistentMapping
from ZODB._compat import dumps
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.utils import z64

from conftest import copy_fs
from pyfs.dump import parse_lines
from pyfs.fsfile import set_status, txn_positions
from pyfs.gen import generate

# Above this many bytes in the last transaction, cut at a sample of offsets.
MAX_EVERY_BYTE = 4096


def append_small_txn(path):
    """Append a transaction of two small new objects (a few hundred bytes)."""
    st = FileStorage(str(path))
    try:
        t = TransactionMetaData("crash ☃", "torn at every byte", {"k": "v", "n": 1})
        st.tpc_begin(t)
        for i in range(2):
            data = dumps(PersistentMapping, 3) + dumps({"data": {"i": i, "s": "déjà"}}, 3)
            st.store(st.new_oid(), z64, data, "", t)
        st.tpc_vote(t)
        st.tpc_finish(t)
    finally:
        st.close()


def offsets(pos, end):
    if end - pos <= MAX_EVERY_BYTE:
        return list(range(pos, end))
    head = range(pos, pos + 256)
    tail = range(end - 256, end)
    return sorted(set(head) | set(tail) | set(range(pos, end, 37)))


def make_cases(base, work):
    """Write each damaged variant of base twice (py/, go/); return the case names."""
    data = Path(base).read_bytes()
    pos, end = txn_positions(base)[-1]
    assert end == len(data)
    cases = {}
    for cut in offsets(pos, end):
        cases[f"cut{cut}"] = (data[:cut], [])
    voted = bytearray(data)
    voted[pos + 16:pos + 17] = b"c"
    cases["voted"] = (bytes(voted), [])
    earlier = [("Data.fs.tr0", b"older tail 0"), ("Data.fs.tr1", b"older tail 1")]
    cases["voted-with-tr0-tr1"] = (bytes(voted), earlier)
    cases[f"cut{end - 1}-with-tr0"] = (data[:end - 1], earlier[:1])
    cases["intact"] = (data, [])
    for side in ("py", "go"):
        for name, (content, extra) in cases.items():
            d = work / side / name
            d.mkdir(parents=True)
            (d / "Data.fs").write_bytes(content)
            for fname, fbytes in extra:
                (d / fname).write_bytes(fbytes)
    return list(cases)


def outcome(d):
    """What recovery left: Data.fs bytes and every .trN file."""
    files = {"Data.fs": (d / "Data.fs").read_bytes()}
    for p in sorted(d.glob("Data.fs.tr*")):
        files[p.name] = p.read_bytes()
    return files


def describe(a, b):
    out = []
    for name in sorted(a.keys() | b.keys()):
        if name not in a or name not in b:
            out.append(f"{name} only in {'python' if name in a else 'zrs'}")
        elif a[name] != b[name]:
            out.append(f"{name}: {len(a[name])} bytes (python) vs {len(b[name])} (zrs)")
    return "; ".join(out)


@pytest.fixture
def quiet_zodb():
    log = logging.getLogger("ZODB.FileStorage")
    old = log.level
    log.setLevel(logging.CRITICAL + 1)  # hundreds of expected truncation warnings
    yield
    log.setLevel(old)


def check_recovery(base, work, run_fstool):
    names = make_cases(base, work)
    for name in names:  # Python: one process, one open per case
        FileStorage(str(work / "py" / name / "Data.fs")).close()
    go_paths = [work / "go" / name / "Data.fs" for name in names]
    lines = parse_lines(run_fstool("open", *go_paths).stdout)
    assert [line["path"] for line in lines] == [str(p) for p in go_paths]

    wrong = []
    for name, line in zip(names, lines):
        py, go = outcome(work / "py" / name), outcome(work / "go" / name)
        if line["size"] != len(go["Data.fs"]):
            wrong.append(f"{name}: fstool open said size {line['size']}, file has {len(go['Data.fs'])}")
        if py != go:
            wrong.append(f"{name}: {describe(py, go)}")
    assert not wrong, f"{len(wrong)} of {len(names)} cases differ:\n  " + "\n  ".join(wrong[:20])
    return names


def test_crash_recovery_python_file(tmp_path, run_fstool, quiet_zodb):
    base = tmp_path / "base" / "Data.fs"
    base.parent.mkdir()
    generate(base, txns=40, seed=11)  # small: every case is a full copy
    append_small_txn(base)
    pos, end = txn_positions(base)[-1]
    assert end - pos < 600, "the last transaction should be small"
    names = check_recovery(base, tmp_path / "cases", run_fstool)
    assert len(names) >= end - pos


def test_crash_recovery_go_file(tmp_path, run_fstool, quiet_zodb):
    base = tmp_path / "base" / "Data.fs"
    base.parent.mkdir()
    run_fstool("write", base, "--txns", 40, "--seed", 11)
    check_recovery(base, tmp_path / "cases", run_fstool)


def test_voted_last_transaction_goes_to_tr0(pydb, tmp_path, run_fstool, quiet_zodb):
    """A full file whose last status is 'c': both cut the whole transaction into .tr0."""
    path = copy_fs(pydb, tmp_path / "Data.fs")
    pos, end = txn_positions(path)[-1]
    set_status(path, pos, b"c")
    run_fstool("open", path)
    assert path.stat().st_size == pos
    assert (tmp_path / "Data.fs.tr0").stat().st_size == end - pos
    tail = (tmp_path / "Data.fs.tr0").read_bytes()
    assert tail[16:17] == b"c" and struct.unpack(">Q", tail[8:16])[0] == end - pos - 8
