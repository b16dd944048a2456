"""Assertion helpers that say where two dumps differ, not just that they do."""

import hashlib
from pathlib import Path

MAX_REPORTED = 10


def _diff_txn(i, want, got):
    out = []
    for key in want.keys() | got.keys():
        if key == "records":
            continue
        if want.get(key, "<missing>") != got.get(key, "<missing>"):
            out.append(f"txn #{i} pos={want.get('pos')} {key}: python={want.get(key, '<missing>')!r}"
                       f" zrs={got.get(key, '<missing>')!r}")
    wr, gr = want.get("records", []), got.get("records", [])
    if len(wr) != len(gr):
        out.append(f"txn #{i} pos={want.get('pos')}: {len(wr)} records in python, {len(gr)} in zrs")
    for j, (a, b) in enumerate(zip(wr, gr)):
        if a != b:
            out.append(f"txn #{i} pos={want.get('pos')} record #{j}: python={a} zrs={b}")
    return out


def assert_same_dump(python, zrs):
    """Compare two lists of transaction dicts (pydump vs zrs fs dump --json)."""
    problems = []
    if len(python) != len(zrs):
        problems.append(f"{len(python)} transactions in python, {len(zrs)} in zrs")
    for i, (want, got) in enumerate(zip(python, zrs)):
        if want != got:
            problems.extend(_diff_txn(i, want, got))
        if len(problems) >= MAX_REPORTED:
            break
    assert not problems, "dumps differ:\n  " + "\n  ".join(problems[:MAX_REPORTED])


def sha1_file(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def assert_same_bytes(want_path, got_path):
    """Byte-compare two files, reporting the first differing offset."""
    a, b = Path(want_path).read_bytes(), Path(got_path).read_bytes()
    if a == b:
        return
    n = min(len(a), len(b))
    first = next((i for i in range(n) if a[i] != b[i]), n)
    raise AssertionError(
        f"{got_path} differs from {want_path}: sizes {len(b)} vs {len(a)}, first difference at "
        f"byte {first} (want {a[first:first + 16].hex()} got {b[first:first + 16].hex()})")
