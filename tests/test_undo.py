"""zrs's undo writes the same records as Python's FileStorage.undo.

On identical copies of a Python-written file, the same transaction(s) are
undone by Python and by zrs (fstool undo), with the same metadata. The files
must then be identical except for the new transaction id; and where Python
refuses (UndoError), zrs must refuse too and leave the file untouched.
"""

import base64
import shutil

import pytest
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import UndoError

from pyfs.dump import parse_lines
from pyfs.fsfile import DATA_HEADER, read_txn_header, txn_positions
from pyfs.gen import generate

CANDIDATES = 40  # most recent transactions tried one by one


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("undo") / "Data.fs"
    generate(path, txns=150, seed=21)
    return path


def py_undo(path, tids):
    """Undo tids in one transaction, as fstool undo does (description "undo")."""
    st = FileStorage(str(path))
    try:
        t = TransactionMetaData(b"", b"undo", {})
        st.tpc_begin(t)
        oids = set()
        try:
            for tid in tids:
                _, undone = st.undo(base64.encodebytes(tid).rstrip(), t)
                oids.update(undone)
            st.tpc_vote(t)
        except UndoError:
            st.tpc_abort(t)
            raise
        st.tpc_finish(t)
        return oids
    finally:
        st.close()


def mask_last_tid(data, pos):
    """The file with the tid of the transaction at pos and of its records zeroed."""
    out = bytearray(data)
    h = read_txn_header(data, pos)
    tid = data[pos:pos + 8]
    out[pos:pos + 8] = bytes(8)
    rec, end = h["first_record"], pos + h["tlen"]
    while rec < end:
        _, rtid, _, _, _, plen = DATA_HEADER.unpack_from(data, rec)
        assert rtid == tid, f"record at {rec} has tid {rtid.hex()}, transaction {tid.hex()}"
        out[rec + 8:rec + 16] = bytes(8)
        rec += 42 + (plen or 8)
    return bytes(out)


def check_undo(base, work, tids, run_fstool):
    py, go = work / "py" / "Data.fs", work / "go" / "Data.fs"
    for p in (py, go):
        p.parent.mkdir(parents=True)
        shutil.copyfile(base, p)
    original = base.read_bytes()
    try:
        py_oids = py_undo(py, tids)
    except UndoError as e:
        proc = run_fstool("undo", go, *[t.hex() for t in tids], check=False)
        assert proc.returncode == 1, f"Python refused ({e}) but zrs undid: {proc.stdout}"
        assert go.read_bytes() == original, "a refused undo changed the file"
        return "refused"
    out = parse_lines(run_fstool("undo", go, *[t.hex() for t in tids]).stdout)[-1]
    assert {bytes.fromhex(o) for o in out["oids"]} == py_oids
    a, b = py.read_bytes(), go.read_bytes()
    assert len(a) == len(b), f"undo transaction: {len(a) - len(original)} bytes in Python, {len(b) - len(original)} in zrs"
    assert a[:len(original)] == b[:len(original)] == original
    assert mask_last_tid(a, len(original)) == mask_last_tid(b, len(original)), "undo records differ"
    return "undone"


def candidates(path):
    data = path.read_bytes()
    positions = txn_positions(path)[-CANDIDATES:]
    return [data[pos:pos + 8] for pos, _ in positions]


def test_undo_each_recent_transaction(base, tmp_path, run_fstool):
    results = {}
    for i, tid in enumerate(candidates(base)):
        results[tid.hex()] = check_undo(base, tmp_path / str(i), [tid], run_fstool)
    assert "undone" in results.values(), results
    assert "refused" in results.values(), results  # conflicts exist in the generated history


def test_undo_two_transactions_at_once(base, tmp_path, run_fstool):
    tids = candidates(base)
    results = [check_undo(base, tmp_path / str(i), [tids[i + 1], tids[i]], run_fstool)
               for i in range(len(tids) - 2, 0, -4)]
    assert "undone" in results, results
