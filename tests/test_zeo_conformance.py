"""ZODB's own storage conformance tests, run through ClientStorage against zrs.

The mixins come from the installed ZODB (ZODB.tests, pinned in
requirements.txt): each test gets a fresh `zrs primary --zeo` on an empty
Data.fs and a ClientStorage connected to it, in both codecs. They are
unittest TestCases; the classes built here are what pytest collects.

Pack is not in scope (zrs does not pack), so PackableStorage is not mixed
in, and the few tests of the other mixins that pack are excluded below, by
name, with that reason. Nothing else is excluded unless it inspects the
Python server's internals; the list is printed at the start of the run.

ZRS_ZEO_SERVER=runzeo runs the same classes against ZEO's own server.

With zrs, the pickle class runs once more against a primary with
synchronous replication (`--durability sync --quorum 1`) and a secondary:
every commit is then answered only after the secondary acknowledged it,
and the same tests must give the same results on that path (its answers
and invalidations come from a goroutine of their own). That a connection
goes on serving while its commit waits is test_zeo_sync.py's to show:
these tests pass whether or not it does.
"""

import pytest
from ZODB.tests import (
    BasicStorage, ConflictResolution, HistoryStorage, IteratorStorage, MTStorage,
    PersistentStorage, ReadOnlyStorage, RevisionStorage, StorageTestBase, Synchronization,
    TransactionalUndoStorage,
)

from zeoserver import CLIENT_TIMEOUT, CODECS, SERVER_KIND, report, start_server

MIXINS = (
    BasicStorage.BasicStorage,  # with racetest.RaceTests
    MTStorage.MTStorage,
    RevisionStorage.RevisionStorage,
    IteratorStorage.IteratorStorage,
    IteratorStorage.ExtendedIteratorStorage,
    Synchronization.SynchronizedStorage,
    ReadOnlyStorage.ReadOnlyStorage,
    HistoryStorage.HistoryStorage,
    TransactionalUndoStorage.TransactionalUndoStorage,
    ConflictResolution.ConflictResolvingStorage,
    ConflictResolution.ConflictResolvingTransUndoStorage,
    PersistentStorage.PersistentStorage,
)

# name -> why it cannot apply. Only pack (out of scope) or Python-server
# internals are reasons; a zrs failure is a bug to report, never a reason.
EXCLUDED = {
    "testTransactionalUndoAfterPack": "packs the storage (pack is not in scope)",
    "testTransactionalUndoAfterPackWithObjectUnlinkFromRoot": "packs the storage (pack is not in scope)",
    "testPackAfterUndoDeletion": "packs the storage (pack is not in scope)",
    "testPackAfterUndoManyTimes": "packs the storage (pack is not in scope)",
    # Undoing a transaction whose objects changed since needs the server to
    # run the application's _p_resolveConflict (Python code) inside undo.
    # zrs resolves conflicts client-side only (ZEO's client-conflict-
    # resolution mode); in that mode ZEO's own server fails this test too
    # (MultipleUndoErrors), and ZEO's suite leaves it out of that mode.
    "testUndoConflictResolution": "needs server-side conflict resolution inside undo",
    "testUndoMultipleConflictResolution": "needs server-side conflict resolution inside undo",
    "testUndoMultipleConflictResolutionReversed":
        "needs server-side conflict resolution inside undo",
}


class _DB:
    """What ClientStorage needs from a registered database: somewhere to
    send invalidations (ignored here) and identity record transforms."""

    def invalidate(self, *args, **kw):
        pass

    def invalidateCache(self):
        pass

    def transform_record_data(self, data):
        return data

    untransform_record_data = transform_record_data


class ZeoConformance(StorageTestBase.StorageTestBase):
    """A fresh server per test; self._storage is a ClientStorage to it."""

    codec = "pickle"
    sync = False  # a sync primary with a secondary (zrs only)
    zrs_bin = None  # set by the _zrs_bin fixture below

    def setUp(self):
        super().setUp()  # a fresh temporary directory, made the cwd
        from pathlib import Path
        work = Path.cwd()
        self._server, self._secondary = start_server(work, codec=self.codec,
                                                     zrs_bin=self.zrs_bin, sync=self.sync)
        self._clients = []
        self._storage = self._client()

    def _client(self, **kw):
        kw.setdefault("wait_timeout", CLIENT_TIMEOUT)
        client = self._server.client(**kw)
        client.registerDB(_DB())
        self._clients.append(client)
        return client

    def _new_storage_client(self):
        """Another ClientStorage to the same server (RaceTests, MTStorage)."""
        return self._client()

    def open(self, read_only=False):
        """Reopen (ReadOnlyStorage, PersistentStorage). The server restarts
        too, so PersistentStorage checks what survives a restart."""
        self._storage.close()
        self._server.restart()
        self._storage = self._client(read_only=read_only)

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


def _build(codec, sync=False):
    name = f"TestZeoConformance_{codec}" + ("_sync" if sync else "")
    cls = type(name, (ZeoConformance,) + MIXINS,
               {"codec": codec, "sync": sync, "__module__": __name__})
    for test in EXCLUDED:
        assert callable(getattr(cls, test, None)), f"excluded {test} is not a test of the mixins"
        setattr(cls, test, None)  # not collected
    return cls


for _codec in CODECS:
    globals()[f"TestZeoConformance_{_codec}"] = _build(_codec)
del _codec
CLASSES = len(CODECS)
if SERVER_KIND == "zrs":
    TestZeoConformance_pickle_sync = _build("pickle", sync=True)
    CLASSES += 1


@pytest.fixture(autouse=True)
def _zrs_bin(request):
    if request.cls is not None and issubclass(request.cls, ZeoConformance) and SERVER_KIND == "zrs":
        request.cls.zrs_bin = request.getfixturevalue("zrs_bin")


@pytest.fixture(scope="module", autouse=True)
def _print_excluded(request):
    """The excluded tests, on the terminal whatever the capture mode."""
    lines = [f"zeo conformance ({SERVER_KIND}): {len(EXCLUDED)} tests excluded per class "
             f"({len(EXCLUDED) * CLASSES} in all, {CLASSES} classes):"]
    lines += [f"  excluded {test}: {why}" for test, why in EXCLUDED.items()]
    report(request.config, lines)


def test_exclusions_are_real_mixin_tests():
    """Every excluded name is a test some mixin defines (the list cannot rot)."""
    defined = {n for m in MIXINS for n in dir(m) if n.startswith("test")}
    assert set(EXCLUDED) <= defined, set(EXCLUDED) - defined
