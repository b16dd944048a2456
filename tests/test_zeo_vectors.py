"""The ZEO wire vectors core/zeo's codec tests use must be what zodbpickle produces today
for the captured messages, at exactly the captured lengths (gen_zeo.py asserts that)."""
from vectorcheck import assert_vectors_current


def test_zeo_vectors_match_captures():
    assert_vectors_current("gen_zeo.py", "core/zeo/testdata/transcripts.txt", "the regenerated vectors",
                           lambda fresh: fresh.count("\nwire Z ") > 150 and fresh.count("\nwire M ") > 80)
