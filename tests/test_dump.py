"""zrs reads Python-written files exactly as Python does (dump) and checks them (verify)."""

import io
import re
import struct

import pytest
from ZODB.FileStorage.fsdump import fsdump
from ZODB.scripts.fstest import FormatError
from ZODB.scripts.fstest import check as fstest_check

from conftest import copy_fs
from pyfs.compare import assert_same_dump
from pyfs.dump import dump, parse_lines
from pyfs.fsfile import DATA_HEADER, add_to_tlen, patch, read_txn_header, txn_positions

DATABASES = ["pydb", "pydb_seed2", "pydb_packed"]


def zrs_dump(run_zrs, path):
    return parse_lines(run_zrs("fs", "dump", "--json", path).stdout)


@pytest.mark.parametrize("db", DATABASES)
def test_dump_matches_python_iterator(db, request, run_zrs):
    path = request.getfixturevalue(db)
    assert_same_dump(list(dump(path)), zrs_dump(run_zrs, path))


@pytest.mark.parametrize("db", DATABASES)
def test_verify_accepts_python_database(db, request, run_zrs):
    run_zrs("fs", "verify", request.getfixturevalue(db))


def _damage_tlen(path, tpos):
    add_to_tlen(path, tpos, 1)
    return [tpos]


def _damage_trailer(path, tpos):
    data = path.read_bytes()
    tlen = read_txn_header(data, tpos)["tlen"]
    patch(path, tpos + tlen, struct.pack(">Q", tlen ^ 0x10))
    return [tpos, tpos + tlen]


def _damage_tloc(path, tpos):
    data = path.read_bytes()
    rec = read_txn_header(data, tpos)["first_record"]
    tloc = DATA_HEADER.unpack_from(data, rec)[3]
    patch(path, rec + 24, struct.pack(">Q", tloc + 1))
    return [tpos, rec]


DAMAGES = {"tlen+1": _damage_tlen, "trailer": _damage_trailer, "record tloc": _damage_tloc}


@pytest.mark.parametrize("damage", DAMAGES)
def test_verify_reports_damage_in_the_middle(damage, pydb, tmp_path, run_zrs):
    path = copy_fs(pydb, tmp_path / "Data.fs")
    positions = txn_positions(path)
    # A transaction in the middle that has data records.
    tpos = next(p for p, end in positions[len(positions) // 2:] if end - p > 200)
    where = DAMAGES[damage](path, tpos)
    with pytest.raises(FormatError):  # the damage is real: Python's fstest sees it too
        fstest_check(str(path))

    proc = run_zrs("fs", "verify", path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"verify exit {proc.returncode} on a damaged file:\n{out}"
    numbers = set(re.findall(r"\d+", out))
    assert any(str(p) in numbers for p in where), (
        f"verify output does not name the damaged position (any of {where}):\n{out}")


@pytest.mark.parametrize("db", DATABASES + ["godb"])
def test_text_dump_is_pythons_fsdump(db, request, run_zrs):
    """`zrs fs dump` (text) prints exactly what ZODB's fsdump prints."""
    path = request.getfixturevalue(db)
    out = io.StringIO()
    fsdump(str(path), out)
    want, got = out.getvalue(), run_zrs("fs", "dump", path).stdout
    if want != got:
        w, g = want.splitlines(), got.splitlines()
        n = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
        pytest.fail(f"line {n + 1} differs:\n  fsdump: {w[n] if n < len(w) else '<end>'}\n"
                    f"  zrs:    {g[n] if n < len(g) else '<end>'}", pytrace=False)
