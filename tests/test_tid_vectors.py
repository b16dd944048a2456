"""The tid vectors the Go tests use must be what persistent computes today."""
from vectorcheck import assert_vectors_current


def test_tid_vectors_match_installed_persistent():
    assert_vectors_current("gen_tids.py", "core/zodb/testdata/tids.txt", "persistent's output",
                           lambda fresh: fresh.count("\n") > 1000)
