"""The pickle vectors core/pyval's Go tests use must be what zodbpickle and CPython produce today."""
from vectorcheck import assert_vectors_current


def test_pyval_vectors_match_zodbpickle():
    assert_vectors_current("gen_pyval.py", "core/pyval/testdata/zeo-pickles.txt", "zodbpickle's output",
                           lambda fresh: fresh.count("\npickle ") > 90 and "\npickle reply_poskeyerror " in fresh)


def test_extension_object_vectors_match_cpython():
    assert_vectors_current("gen_extobj.py", "core/pyval/testdata/ext-objects.txt", "CPython's output",
                           lambda fresh: fresh.count("\next ") >= 10 and "\next uuid " in fresh)
