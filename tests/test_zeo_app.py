"""Applications on the zrs ZEO server: unmodified ZODB.DB(ClientStorage(addr)).

What a ZODB application does through ZEO, against a fresh `zrs primary
--zeo` per test, in both codecs (pickle and msgpack): persistent mappings
and OOBTrees, thousands of small commits, conflicts resolved client-side
(BTrees.Length and a shared OOBTree bucket, final values exact) and genuine
conflicts raised, other clients seeing every commit, undo, history,
iteration, the read-only secondary, server_status/ping/ruok, unix sockets,
and TLS with client certificates.

ZRS_ZEO_SERVER=runzeo runs the same tests against ZEO's own server (see
zeoserver.py).
"""

import dataclasses
import random
import ssl
import threading
import time

import pytest
import transaction
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from ZEO.asyncio.marshal import decoder, encoder
from ZEO.Exceptions import ClientDisconnected
from ZODB._compat import dumps
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import p64, u64, z64

from zeoserver import (  # noqa: F401 (fixtures)
    codec, handshake, make_revocation, pki, raw_connect, recv_frame, ruok, send_frame, zeo,
)


def opened(db, tm=None):
    """A connection of db with its own transaction manager."""
    tm = tm or transaction.TransactionManager()
    return tm, db.open(tm)


# --- the wire ---------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_handshake_announces_codec(zeo, codec, transport):
    srv = zeo(codec=codec, transport=transport)
    assert handshake(srv.addr) == {"pickle": b"Z5", "msgpack": b"M5"}[codec]


def raw_call(addr, method, args, read_only=False, tls_context=None):
    """Handshake, register('1', read_only), then one call; returns (register reply, reply).

    Messages are made by ZEO's own client marshalling, in the codec the
    server announced.
    """
    with raw_connect(addr, tls_context=tls_context) as sock:
        proto = recv_frame(sock)
        send_frame(sock, proto)
        enc, dec = encoder(proto), decoder(proto)
        send_frame(sock, enc(1, False, "register", ("1", read_only)))
        reg = dec(recv_frame(sock))
        if reg[1] != 0:
            return reg, None
        send_frame(sock, enc(2, False, method, args))
        while True:  # skip one-way messages (invalidations, info)
            msg = dec(recv_frame(sock))
            if msg[2] == ".reply":
                return reg, msg


def test_ruok_ping_server_status(zeo, codec):
    srv = zeo(codec=codec)
    db = srv.db()
    with db.transaction() as conn:
        conn.root()["x"] = 1
    storage = db.storage
    last = storage.lastTransaction()
    assert last != z64
    assert storage._call("ping") is None

    status = storage.server_status()
    assert isinstance(status, dict), status
    assert status.get("last-transaction") == last.hex(), status
    assert status.get("connections", 0) >= 1, status

    hello, doc = ruok(srv.addr)
    assert hello == {"pickle": b"Z5", "msgpack": b"M5"}[codec]
    assert set(doc) == {"1"}, doc
    assert doc["1"]["last-transaction"] == last.hex(), doc
    db.close()


def test_register_reply_and_unknown_storage(zeo, codec):
    """register returns the last tid; an unknown storage name is an error reply."""
    srv = zeo(codec=codec)
    reg, reply = raw_call(srv.addr, "lastTransaction", ())
    assert reg[0] == 1 and reg[1] == 0 and reg[2] == ".reply" and reg[3] == z64, reg
    assert reply[3] == z64, reply
    assert_register_refused(srv, "nosuch")


def assert_register_refused(srv, storage):
    """register(storage) is answered with a ValueError reply."""
    with raw_connect(srv.addr) as sock:
        proto = recv_frame(sock)
        send_frame(sock, proto)
        send_frame(sock, encoder(proto)(1, False, "register", (storage, False)))
        msgid, flags, name, (exc, args) = decoder(proto)(recv_frame(sock))
        assert (msgid, flags, name) == (1, 2, ".reply")
        assert exc == "builtins.ValueError", (exc, args)


def test_named_storage(zeo):
    """A server whose storage is named (runzeo's <filestorage catalog>, zrs
    --zeo-storage catalog) serves clients that ask for that name, and
    refuses the default name "1"."""
    srv = zeo(storage="catalog")
    db = srv.db(storage="catalog")
    with db.transaction("named") as conn:
        conn.root()["where"] = "catalog"
    db.close()
    db = srv.db(storage="catalog")
    with db.transaction() as conn:
        assert conn.root()["where"] == "catalog"
    db.close()
    assert_register_refused(srv, "1")


# --- application ------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_mappings_and_btrees(zeo, codec, transport):
    srv = zeo(codec=codec, transport=transport)
    db = srv.db()
    with db.transaction("build") as conn:
        root = conn.root()
        root["people"] = PersistentMapping()
        root["index"] = OOBTree()
        for i in range(500):
            root["people"][f"p{i}"] = PersistentMapping(name=f"person {i}", age=i % 90)
            root["index"][f"k{i:04d}"] = i
    with db.transaction("update") as conn:
        root = conn.root()
        root["people"]["p7"]["age"] = 700
        del root["index"]["k0003"]
        root["index"]["zz"] = "last"
    db.close()

    other = srv.db()
    with other.transaction() as conn:
        root = conn.root()
        assert len(root["people"]) == 500
        assert root["people"]["p7"]["age"] == 700
        assert root["people"]["p8"]["name"] == "person 8"
        assert "k0003" not in root["index"]
        assert len(root["index"]) == 500
        assert root["index"]["zz"] == "last"
        assert list(root["index"].keys())[:3] == ["k0000", "k0001", "k0002"]
    other.close()


def test_thousands_of_commits(zeo, codec):
    """2000 small commits from one client; a second client and the
    storage's own transaction count agree with what was committed."""
    n = 2000
    srv = zeo(codec=codec)
    db = srv.db()
    tm, conn = opened(db)
    with tm:
        conn.root()["counter"] = PersistentMapping(n=0)
        conn.root()["log"] = OOBTree()
    tids = set()
    for i in range(1, n + 1):
        with tm:
            conn.root()["counter"]["n"] = i
            conn.root()["log"][i % 97] = i
        tids.add(db.storage.lastTransaction())
    assert len(tids) == n  # one new, increasing tid per commit
    conn.close()

    reader = srv.db()
    with reader.transaction() as rconn:
        assert rconn.root()["counter"]["n"] == n
        assert rconn.root()["log"][n % 97] == n
    count = sum(1 for _ in reader.storage.iterator())
    assert count == n + 2  # root creation, the setup commit, n commits
    reader.close()
    db.close()


def test_length_and_bucket_conflicts_resolved(zeo, codec):
    """Two clients change the same BTrees.Length and the same OOBTree bucket
    from the same snapshot: the second commit is resolved (client-side),
    and the final values are exact."""
    srv = zeo(codec=codec)
    db1, db2 = srv.db(), srv.db()  # server_sync: each sees the other's last commit
    tm1, c1 = opened(db1)
    with tm1:
        root = c1.root()
        root["len"] = Length(10)
        root["small"] = OOBTree()  # one bucket inline in the tree
        root["big"] = OOBTree()  # many buckets; keys 0..299 step 3
        for k in range(0, 300, 3):
            root["big"][k] = "orig"
    tm2, c2 = opened(db2)
    for rnd in range(5):
        tm1.begin()
        tm2.begin()
        r1, r2 = c1.root(), c2.root()
        # Both load everything they change before either commits.
        r1["len"].change(1)
        r2["len"].change(2)
        r1["small"][f"a{rnd}"] = rnd
        r2["small"][f"b{rnd}"] = rnd
        r1["big"][150 + 3 * rnd + 1] = "one"  # neighbours in the same bucket
        r2["big"][150 + 3 * rnd + 2] = "two"
        tm1.commit()
        tm2.commit()  # conflicts on all three, resolved by the client

    check = srv.db()
    with check.transaction() as conn:
        root = conn.root()
        assert root["len"]() == 10 + 5 * 3
        assert dict(root["small"]) == {**{f"a{r}": r for r in range(5)},
                                       **{f"b{r}": r for r in range(5)}}
        assert len(root["big"]) == 100 + 10
        for r in range(5):
            assert root["big"][150 + 3 * r + 1] == "one"
            assert root["big"][150 + 3 * r + 2] == "two"
    for d in (check, db1, db2):
        d.close()


def test_concurrent_clients_counting(zeo, codec):
    """Two clients (each its own DB and thread) add to one Length and one
    OOBTree at the same time, retrying on ConflictError: conflicts happen,
    are resolved by the clients, and nothing is lost.

    The pauses keep the contention below what ZEO's client can take: it
    re-votes at most 9 times and then, silently, calls tpc_finish anyway.
    """
    srv = zeo(codec=codec)
    db = srv.db()
    with db.transaction() as conn:
        conn.root()["len"] = Length()
        conn.root()["tree"] = OOBTree()
    db.close()
    per_client, errors, done, resolved = 150, [], [], []

    def worker(w):
        wdb = srv.db()
        storage = wdb.storage
        resolve = storage.tryToResolveConflict

        def counting(*args, **kw):
            resolved.append(w)
            return resolve(*args, **kw)

        storage.tryToResolveConflict = counting
        tm, conn = opened(wdb)
        rng = random.Random(w)
        try:
            for i in range(per_client):
                for _attempt in range(50):
                    try:
                        with tm:
                            conn.root()["len"].change(1)
                            conn.root()["tree"][f"w{w}-{i:04d}"] = i
                        break
                    except ConflictError:
                        continue
                else:
                    raise AssertionError(f"worker {w}: 50 conflicts in a row at {i}")
                time.sleep(rng.uniform(0, 0.005))
            done.append(w)
        except BaseException as e:
            errors.append(e)
        finally:
            wdb.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(done) == [0, 1]
    assert resolved, "no conflict happened: the test did not test resolution"
    check = srv.db()
    with check.transaction() as conn:
        assert conn.root()["len"]() == 2 * per_client
        assert len(conn.root()["tree"]) == 2 * per_client
    check.close()


def test_genuine_conflict_raises(zeo, codec):
    """Two clients change the same PersistentMapping key: the second gets
    ConflictError (with the oid), and succeeds once it retries."""
    srv = zeo(codec=codec)
    db1, db2 = srv.db(), srv.db()
    tm1, c1 = opened(db1)
    with tm1:
        c1.root()["m"] = PersistentMapping(k="orig")
    tm2, c2 = opened(db2)
    tm1.begin()
    tm2.begin()
    c1.root()["m"]["k"] = "one"
    c2.root()["m"]["k"] = "two"
    oid = c2.root()["m"]._p_oid
    tm1.commit()
    with pytest.raises(ConflictError) as err:
        tm2.commit()
    assert err.value.oid == oid
    tm2.abort()
    with tm2:
        assert c2.root()["m"]["k"] == "one"
        c2.root()["m"]["k"] = "two"
    with tm1:
        assert c1.root()["m"]["k"] == "two"
    db1.close()
    db2.close()


def test_other_client_sees_every_change(zeo, codec):
    """After each commit of A, B's next transaction (server_sync: a ping
    before it, so the invalidation is in) sees exactly that state."""
    srv = zeo(codec=codec)
    dba, dbb = srv.db(), srv.db()
    tma, ca = opened(dba)
    with tma:
        ca.root()["m"] = PersistentMapping(v=0)
        ca.root()["t"] = OOBTree()
    tmb, cb = opened(dbb)
    for i in range(1, 101):
        with tma:
            ca.root()["m"]["v"] = i
            ca.root()["t"][i] = str(i)
        with tmb:
            assert cb.root()["m"]["v"] == i
            assert cb.root()["t"][i] == str(i)
            assert len(cb.root()["t"]) == i
    dba.close()
    dbb.close()


def test_invalidations_arrive_without_sync(zeo, codec):
    """Without server_sync, B learns of A's commit by invalidateTransaction
    alone: its lastTransaction reaches A's tid promptly."""
    srv = zeo(codec=codec)
    dba, dbb = srv.db(), srv.db(server_sync=False)
    tma, ca = opened(dba)
    for i in range(20):
        with tma:
            ca.root()["v"] = i
        tid = dba.storage.lastTransaction()
        deadline = time.monotonic() + 10
        while dbb.storage.lastTransaction() < tid:
            assert time.monotonic() < deadline, f"no invalidation for {tid.hex()} in 10 s"
            time.sleep(0.002)
        assert dbb.storage.lastTransaction() == tid
        tmb, cb = opened(dbb)
        with tmb:
            assert cb.root()["v"] == i
        cb.close()
    dba.close()
    dbb.close()


def test_undo_through_db(zeo, codec):
    srv = zeo(codec=codec)
    db = srv.db()
    for i in range(3):
        with db.transaction(f"set {i}") as conn:
            conn.root()["v"] = i
            conn.root().setdefault("m", PersistentMapping())["i"] = i
    assert db.supportsUndo()
    log = db.undoLog(0, 10)
    assert [e["description"] for e in log[:3]] == ["set 2", "set 1", "set 0"]
    db.undo(log[0]["id"])  # undo "set 2"
    transaction.commit()
    check = srv.db()
    with check.transaction() as conn:
        assert conn.root()["v"] == 1
        assert conn.root()["m"]["i"] == 1
    log = db.undoLog(0, 10)
    assert len(log) == 5  # creation, set 0..2, the undo
    info = db.undoInfo(0, 2)
    assert len(info) == 2 and info[1]["description"] == "set 2"
    # Undo the undo: back to "set 2".
    db.undo(log[0]["id"])
    transaction.commit()
    with check.transaction() as conn:
        assert conn.root()["v"] == 2
    check.close()
    db.close()


def test_history(zeo, codec):
    srv = zeo(codec=codec)
    db = srv.db()
    tids = []
    tm, conn = opened(db)
    for i in range(5):
        with tm as t:
            t.note(f"rev {i}")
            t.setUser(f"user{i}")
            t.setExtendedInfo("n", i)
            conn.root()["m"] = conn.root().get("m") or PersistentMapping()
            conn.root()["m"]["i"] = i
            oid = conn.root()["m"]._p_oid
        tids.append(db.storage.lastTransaction())
    hist = db.history(oid, size=10)
    assert [h["tid"] for h in hist] == tids[::-1]
    assert [h["description"] for h in hist] == [f"rev {i}" for i in range(4, -1, -1)]
    assert hist[0]["user_name"] == "/ user4"  # setUser's default path "/"
    assert hist[0]["n"] == 4
    assert all(h["size"] > 0 for h in hist)
    assert [h["tid"] for h in db.history(oid, size=2)] == tids[:-3:-1]
    db.close()


def test_history_keys_of_the_revision_win_over_the_extension(zeo, codec):
    # FileStorage.history: the extension's items, then time, user_name,
    # description, tid and size of the revision itself.
    srv = zeo(codec=codec)
    db = srv.db()
    tm, conn = opened(db)
    with tm as t:
        t.setExtendedInfo("tid", "ticket-42")
        t.setExtendedInfo("size", "XL")
        t.setExtendedInfo("description", "from the extension")
        t.setExtendedInfo("kept", 1)
        conn.root()["m"] = PersistentMapping()
    oid = conn.root()["m"]._p_oid
    tid = db.storage.lastTransaction()
    (h,) = db.history(oid, size=1)  # DB.history decodes description and user_name
    assert (h["tid"], h["description"], h["kept"]) == (tid, "", 1), h
    assert isinstance(h["size"], int) and h["size"] > 0, h
    db.close()


def test_sets_in_the_extension(zeo):
    # ZEO's server accepts sets (and bytearray, complex) in a transaction
    # extension: they come from builtins; so does zrs, and stores what
    # FileStorage stores for them.
    # Its clients cannot unpickle them: undoLog and history leave them
    # out (ZEO's own server sends them, and the client's reply is lost).
    srv = zeo()
    db = srv.db()
    tm, conn = opened(db)
    with tm as t:
        t.setExtendedInfo("tags", {"ops"})
        t.setExtendedInfo("frozen", frozenset(["x"]))
        t.setExtendedInfo("buf", bytearray(b"ab"))
        t.setExtendedInfo("z", complex(1, 2))
        t.setExtendedInfo("kept", 1)
        conn.root()["m"] = PersistentMapping()
    tid = db.storage.lastTransaction()
    if srv.kind == "zrs":
        entry = db.undoLog(0, 1)[0]  # the newest: this transaction
        assert entry["kept"] == 1 and "tags" not in entry, entry
    db.close()
    srv.stop()
    fs = FileStorage(str(srv.datafs), read_only=True)
    try:
        (rec,) = [r for r in fs.iterator(tid, tid)]
        assert rec.extension == {"tags": {"ops"}, "frozen": frozenset(["x"]), "buf": bytearray(b"ab"),
                                 "z": complex(1, 2), "kept": 1}
        assert rec.extension_bytes == dumps(rec.extension, 3)
    finally:
        fs.close()


def store_raw(storage, records, user=b"", description=b"", ext=None):
    """One storage-level transaction of (oid, serial, data); returns the tid."""
    t = TransactionMetaData(user, description, ext or {})
    storage.tpc_begin(t)
    for oid, serial, data in records:
        storage.store(oid, serial, data, "", t)
    storage.tpc_vote(t)
    return storage.tpc_finish(t)


def test_iterator_matches_commits(zeo, codec):
    """storage.iterator() returns exactly the transactions and records committed."""
    srv = zeo(codec=codec)
    storage = srv.client()
    oids = [storage.new_oid() for _ in range(6)]
    serials = {oid: z64 for oid in oids}
    committed = []  # (tid, user, description, extension, {oid: data})
    for i in range(40):
        chosen = oids[i % 6: i % 6 + 1 + i % 3]
        recs = [(oid, serials[oid], zodb_pickle(MinPO((i, u64(oid))))) for oid in chosen]
        user, desc, ext = f"u{i}".encode(), f"txn {i} \u00e9".encode(), {"i": i, "s": "x" * i}
        tid = store_raw(storage, recs, user, desc, ext)
        for oid, _, _ in recs:
            serials[oid] = tid
        committed.append((tid, user, desc, ext, {oid: data for oid, _, data in recs}))

    def check(txns, want):
        got = []
        for txn in txns:
            recs = {r.oid: (r.tid, r.data, r.data_txn) for r in txn}
            got.append((txn.tid, txn.user, txn.description, txn.extension, recs))
        assert len(got) == len(want)
        for g, (tid, user, desc, ext, data) in zip(got, want):
            assert g[:4] == (tid, user, desc, ext)
            assert g[4] == {oid: (tid, d, None) for oid, d in data.items()}

    check(storage.iterator(), committed)
    check(storage.iterator(committed[10][0], committed[19][0]), committed[10:20])
    check(storage.iterator(p64(u64(committed[-1][0]) + 1)), [])
    storage.close()


# --- read-only replica ------------------------------------------------------------

def test_secondary_refuses_writable_register(zeo):
    primary = zeo(replicate=True)
    db = primary.db()
    with db.transaction() as conn:
        conn.root()["v"] = "from the primary"
    last = db.storage.lastTransaction()
    sec = zeo.secondary(primary)

    reg, _ = raw_call(sec.addr, "lastTransaction", (), read_only=False)
    assert reg[1] == 2 and reg[3][0] == "ZODB.POSException.ReadOnlyError", reg
    with pytest.raises(ClientDisconnected):
        sec.client(wait_timeout=3)

    # read_only_fallback registers read-only and reads the replica.
    deadline = time.monotonic() + 10
    while True:
        reg, reply = raw_call(sec.addr, "lastTransaction", (), read_only=True)
        assert reg[1] == 0, reg
        if reply[3] == last:
            break
        assert time.monotonic() < deadline, "secondary not caught up in 10 s"
        time.sleep(0.05)
    rdb = sec.db(read_only_fallback=True)
    assert rdb.storage.isReadOnly()
    with rdb.transaction() as conn:
        assert conn.root()["v"] == "from the primary"
    tm, conn = opened(rdb)
    tm.begin()
    conn.root()["v"] = "refused"
    with pytest.raises(Exception) as err:
        tm.commit()
    assert type(err.value).__name__ == "ReadOnlyError", err.value
    tm.abort()
    rdb.close()
    db.close()


# --- TLS --------------------------------------------------------------------------

def test_tls_client_certificates(zeo, pki):
    srv = zeo(pki=pki)
    db = srv.db()  # our CA's client certificate
    with db.transaction() as conn:
        conn.root()["secret"] = "over TLS"
    db.close()
    hello, doc = ruok(srv.addr, tls_context=pki.client_context())
    assert hello == b"Z5" and "1" in doc

    for which in (None, "other"):  # no certificate; one from another CA
        with pytest.raises((OSError, EOFError)):
            hello = handshake(srv.addr, tls_context=pki.client_context(which), timeout=5)
            pytest.fail(f"client certificate {which!r}: the server sent {hello!r}")
        with pytest.raises(ClientDisconnected):
            srv.client(tls=which, wait_timeout=2)
    # Plain TCP to the TLS port: no ZEO handshake in the clear.
    with raw_connect(srv.addr, timeout=2) as sock:
        with pytest.raises((OSError, EOFError)):
            got = recv_frame(sock)
            pytest.fail(f"plain TCP to a TLS port got a frame {got!r}")

    db = srv.db()
    with db.transaction() as conn:
        assert conn.root()["secret"] == "over TLS"
    db.close()



def test_tls_revoked_client_certificate(zeo, pki, tmp_path):
    """The authenticate file holds the CA and its CRL: as ZEO (which then
    sets VERIFY_CRL_CHECK_LEAF), the revoked client is refused, the CA's other
    clients are served."""
    bundle, revoked_cert, revoked_key = make_revocation(tmp_path / "crl", pki)
    srv = zeo(pki=dataclasses.replace(pki, ca=bundle))
    revoked = ssl.create_default_context(cafile=str(pki.ca))
    revoked.load_cert_chain(str(revoked_cert), str(revoked_key))
    with pytest.raises((OSError, EOFError)):
        hello = handshake(srv.addr, tls_context=revoked, timeout=5)
        pytest.fail(f"revoked client certificate: the server sent {hello!r}")
    with pytest.raises(ClientDisconnected):
        srv.client(ssl=revoked, wait_timeout=2)
    if srv.kind == "zrs":
        assert "revoked by the CRL" in srv.log(), srv.log()[-3000:]

    db = srv.db()  # a client certificate of the same CA, not revoked
    with db.transaction() as conn:
        conn.root()["revocation"] = "checked"
    db.close()
