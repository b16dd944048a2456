"""The zc.zrs vectors the Go tests use must be what CPython and ZODB produce today."""
from vectorcheck import assert_vectors_current


def test_zrs_vectors_match_cpython():
    assert_vectors_current("gen_zrs.py", "core/zrsproto/testdata/vectors.txt", "CPython's output",
                           lambda fresh: fresh.count("\next ") > 300 and "\nstream plain " in fresh)
