"""A server restart keeps clients' persistent caches.

A client with a persistent cache (ClientStorage(addr, client=..., var=...))
fills it, closes, the server restarts on the same Data.fs, another client
makes more than 100 commits (past the "last 100 transactions" that ZEO's
own server remembers across a restart), and the first client reopens: the
server must answer getInvalidations for the cache's tid, so the cache is
kept (no "dropping stale cache", no StaleCache event), unchanged objects
come from the cache without a server load, and changed ones are fresh.
"""

import logging

import pytest
import ZODB
from persistent.mapping import PersistentMapping
from ZEO.interfaces import StaleCache
from ZODB import event

from zeoserver import codec, zeo  # noqa: F401 (fixtures)

OBJECTS = 60
CHANGED = range(0, 60, 6)  # the objects the other client changes
LATER_COMMITS = 150


@pytest.fixture
def stale_events(monkeypatch):
    """StaleCache events the ZEO client notifies (through ZODB.event.notify)."""
    got = []
    real = event.notify

    def notify(e):
        if isinstance(e, StaleCache):
            got.append(e)
        return real(e)

    monkeypatch.setattr(event, "notify", notify)
    return got


def count_server_loads(storage):
    """Wrap the storage's server stub: every loadBefore that reaches the
    server is recorded (cache hits never get there)."""
    loads = []
    server = storage._server
    real = server.load_before

    def load_before(oid, tid):
        loads.append(oid)
        return real(oid, tid)

    server.load_before = load_before
    return loads


def test_persistent_cache_survives_restart(zeo, codec, tmp_path, caplog, stale_events):
    caplog.set_level(logging.INFO, logger="ZEO")
    srv = zeo(codec=codec)
    var = tmp_path / "var"
    var.mkdir()

    db = ZODB.DB(srv.client(client="c1", var=str(var)))
    with db.transaction() as conn:
        objs = conn.root()["objs"] = PersistentMapping()
        for i in range(OBJECTS):
            objs[i] = PersistentMapping(value=f"v{i}")
    oids = {}
    with db.transaction() as conn:  # every object read: all in the cache
        objs = conn.root()["objs"]
        for i in range(OBJECTS):
            assert objs[i]["value"] == f"v{i}"
            oids[i] = objs[i]._p_oid
    cache_tid = db.storage.lastTransaction()
    db.close()
    assert list(var.glob("c1-1.zec")), f"no persistent cache file in {list(var.iterdir())}"

    srv.restart()

    other = srv.db()
    for n in range(LATER_COMMITS):
        with other.transaction() as conn:
            objs = conn.root()["objs"]
            for i in CHANGED:
                objs[i]["value"] = f"v{i} changed {n}"
    last = other.storage.lastTransaction()
    other.close()
    caplog.clear()

    storage = srv.client(client="c1", var=str(var))
    assert storage.lastTransaction() == last
    cache = storage._cache
    for i in range(OBJECTS):
        entry = cache.load(oids[i])
        if i in CHANGED:
            assert entry is None, f"object {i} changed since {cache_tid.hex()} but still cached"
        else:
            assert entry is not None, f"object {i}: unchanged, yet gone from the cache"
    stale = [r.getMessage() for r in caplog.records
             if "stale cache" in r.getMessage() or r.levelno >= logging.CRITICAL]
    assert not stale, stale
    assert not stale_events, stale_events

    loads = count_server_loads(storage)
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        objs = conn.root()["objs"]
        for i in range(OBJECTS):
            want = f"v{i} changed {LATER_COMMITS - 1}" if i in CHANGED else f"v{i}"
            assert objs[i]["value"] == want, f"object {i}"
    unchanged = {oids[i] for i in range(OBJECTS) if i not in CHANGED}
    assert not unchanged & set(loads), "unchanged objects were loaded from the server"
    assert {oids[i] for i in CHANGED} <= set(loads)
    with db.transaction() as conn:  # and it still commits
        conn.root()["objs"][1]["value"] = "after"
    db.close()


def test_connected_client_reconnects_after_restart(zeo, codec):
    """A client that stays open across a restart reconnects by itself and
    sees what was committed after the restart."""
    srv = zeo(codec=codec)
    db = srv.db()
    with db.transaction() as conn:
        conn.root()["v"] = "before"
    srv.restart()
    other = srv.db()
    with other.transaction() as conn:
        assert conn.root()["v"] == "before"
        conn.root()["v"] = "after"
    other.close()
    with db.transaction() as conn:  # server_sync: waits for the reconnection
        assert conn.root()["v"] == "after"
        conn.root()["w"] = 1
    db.close()


def test_new_oids_survive_restart(zeo):
    """ClientStorage keeps the batch of new oids it fetched and did not use
    across a reconnection. After a server restart, another client's new
    objects must not take those oids: zrs records the oids it handed out
    (Data.fs.oid). Python's server starts again from the greatest oid in
    the file, and the first client's next new object fails: a ConflictError,
    or, when its connection already holds the other object, "A different
    object already has the same oid"."""
    from ZODB.POSException import ConflictError

    srv = zeo()
    first = srv.db()
    with first.transaction() as conn:
        conn.root()["a"] = PersistentMapping()  # fetches a batch of oids, uses one
    srv.restart()
    other = srv.db()
    with other.transaction() as conn:
        conn.root()["b"] = PersistentMapping()
    other.close()
    try:
        with first.transaction() as conn:
            conn.root()["c"] = PersistentMapping()
        conflict = None
    except (ConflictError, ValueError) as e:
        conflict = e
    if srv.kind == "runzeo":
        assert conflict is not None, "runzeo handed the same oid out twice and nothing failed"
    else:
        assert conflict is None, f"a new object failed after a restart: {conflict!r}"
        with first.transaction() as conn:
            root = conn.root()
            assert root["a"]._p_oid != root["b"]._p_oid != root["c"]._p_oid != root["a"]._p_oid
    first.close()
