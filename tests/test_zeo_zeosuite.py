"""ZEO's own client/server tests that fit an external server, run against zrs.

ZODB's storage mixins (test_zeo_conformance.py) check one storage; these,
from the installed ZEO's test package, check what a ZEO server adds:

- InvalidationTests: several clients (up to 19) and threads update one
  OOBTree concurrently, resolving conflicts client-side, then every client
  must see exactly the keys that were committed and the tree must be sane
  at the C level. A server that lets an invalidation overtake a load, or
  drops one, fails here.
- IterationTests: the iterator_gc protocol as ClientStorage drives it
  (exhaustion, transactions spanning iterators, commits and aborts while
  iterating, disconnects, parallel iterators).

With zrs the whole suite runs once more against a primary with
synchronous replication and a secondary (TestZeoSuiteSync): each commit is
then published and answered only after the secondary's acknowledgement,
from a goroutine of its own, and the suite's results must not change.
(That the connections go on loading meanwhile is test_zeo_sync.py's to
show.)

ZEO names these tests check*; each is exposed as test_check* for pytest.
The workers run InvalidationTests.MINTIME seconds at least; it is lowered
from ZEO's 10 s to keep the suite short (they still commit hundreds of
transactions each).
"""

import pytest
from ZEO.tests.InvalidationTests import InvalidationTests
from ZEO.tests.IterationTests import IterationTests
from ZODB.tests import StorageTestBase

from zeoserver import CLIENT_TIMEOUT, SERVER_KIND, start_server


class ZeoSuite(StorageTestBase.StorageTestBase, InvalidationTests, IterationTests):
    __test__ = False  # collected through TestZeoSuite
    MINTIME = 3
    zrs_bin = None
    sync = False  # a sync primary with a secondary (zrs only)

    def setUp(self):
        super().setUp()
        from pathlib import Path
        work = Path.cwd()
        self._server, self._secondary = start_server(work, codec="pickle", zrs_bin=self.zrs_bin,
                                                     sync=self.sync)
        self._clients = []
        self._storage = self.openClientStorage()

    def openClientStorage(self, **kw):
        kw.setdefault("wait_timeout", CLIENT_TIMEOUT)
        client = self._server.client(**kw)
        self._clients.append(client)
        return client

    def tearDown(self):
        try:
            for client in self._clients:
                client.close()
            self._storage = None
            self._server.stop()
            if self._secondary is not None:
                self._secondary.stop()
        finally:
            self._server.kill()
            if self._secondary is not None:
                self._secondary.kill()
            super().tearDown()


for _name in [n for n in dir(ZeoSuite) if n.startswith("check")]:
    setattr(ZeoSuite, "test_" + _name, getattr(ZeoSuite, _name))
del _name


class TestZeoSuite(ZeoSuite):
    __test__ = True


if SERVER_KIND == "zrs":
    class TestZeoSuiteSync(ZeoSuite):
        __test__ = True
        sync = True


@pytest.fixture(autouse=True)
def _zrs_bin(request):
    if request.cls is not None and issubclass(request.cls, ZeoSuite) and SERVER_KIND == "zrs":
        request.cls.zrs_bin = request.getfixturevalue("zrs_bin")
