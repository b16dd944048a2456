"""Failing over a ZEO application from a lost zrs primary to its promoted secondary.

The set-up OPERATIONS.md recommends: the application's ClientStorage lists
the primary first and the secondary second, with read_only_fallback=True.
When the primary is lost the client falls back to the secondary, read-only
(a writable register there is refused); after `zrs promote` the same port
accepts writers, and the client must be able to commit again without a
restart of the application. zrs-only: runzeo has no promotion.

It runs over zrs3, whose heartbeats tell the secondary which oids the
primary may have handed out, and over zc.zrs's zrs2.0, which does not:
there the promotion's gap in the oids alone keeps the client's batch from
the old primary from being handed out again.
"""

import subprocess
import time

import pytest

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZEO.ClientStorage import ClientStorage
from ZODB.POSException import ReadOnlyError
from ZEO.Exceptions import ClientDisconnected

from zeoserver import ZeoServer, wait_until

WAIT = 20  # seconds for each step before the test fails


@pytest.mark.parametrize("protocol", ["zrs3", "zrs2"])
def test_read_only_fallback_client_writes_after_promotion(zrs_bin, tmp_path, protocol):
    primary = ZeoServer("zrs", tmp_path / "p" / "Data.fs", tmp_path, listen="127.0.0.1:0",
                        replicate=True, zrs_bin=zrs_bin, name="zrs primary").start()
    admin = str(tmp_path / "secondary-admin.sock")
    secondary = ZeoServer("zrs", tmp_path / "s" / "Data.fs", tmp_path, listen="127.0.0.1:0",
                          role="secondary", upstream=primary, zrs_bin=zrs_bin,
                          name="zrs secondary", admin=admin,
                          extra_args=("--protocol", protocol)).start()
    try:
        storage = ClientStorage([primary.addr, secondary.addr], read_only_fallback=True,
                                wait_timeout=WAIT)
        # The client may take the secondary's read-only connection first,
        # then move to the primary's, dropping what was in flight on the
        # first: wait for the writable one before using it.
        wait_until("the client connecting to the primary, writable",
                   lambda: storage.is_connected() and not storage.is_read_only())
        db = ZODB.DB(storage)
        tm = transaction.TransactionManager()
        conn = db.open(transaction_manager=tm)
        with tm:
            conn.root()["where"] = "primary"
            # The client fetches a batch of new oids from the primary and
            # keeps what it did not use through the failover.
            conn.root()["before"] = PersistentMapping()
        wait_until("the secondary catching up", lambda: _last_tid(secondary) == storage.lastTransaction())

        primary.kill()  # lost: no clean stop
        wait_until("the client falling back to the secondary, read-only",
                   lambda: storage.is_connected() and storage.is_read_only())
        tm.begin()
        assert conn.root()["where"] == "primary"
        conn.root()["where"] = "refused"
        try:
            tm.commit()
            raise AssertionError("a commit on the read-only fallback succeeded")
        except ReadOnlyError:
            tm.abort()

        out = subprocess.run([str(zrs_bin), "promote", admin], capture_output=True, text=True,
                             timeout=WAIT)
        assert out.returncode == 0, out.stderr

        # The same client, no restart of the application: it commits again.
        deadline = time.monotonic() + WAIT
        while True:
            try:
                tm.begin()
                conn.root()["where"] = "promoted secondary"
                tm.commit()
                break
            except (ReadOnlyError, ClientDisconnected) as e:
                tm.abort()
                assert time.monotonic() < deadline, (
                    f"the fallback client still cannot write {WAIT}s after the promotion: "
                    f"{type(e).__name__} (read_only={storage.is_read_only()})")
                time.sleep(0.1)
        assert not storage.is_read_only()

        # Another client's new objects on the promoted secondary must not
        # take the oids the first client still holds from the old primary.
        other = ZODB.DB(ClientStorage(secondary.addr, wait_timeout=WAIT))
        with other.transaction() as c:
            c.root()["other"] = PersistentMapping()
        other.close()
        tm.begin()
        conn.root()["mine"] = PersistentMapping()
        tm.commit()
        tm.begin()
        oids = {conn.root()[k]._p_oid for k in ("before", "other", "mine")}
        assert len(oids) == 3, oids
        db.close()

        check = ZODB.DB(ClientStorage(secondary.addr, wait_timeout=WAIT))
        with check.transaction() as c:
            assert c.root()["where"] == "promoted secondary"
        check.close()
    finally:
        secondary.stop()
        primary.kill()


def _last_tid(server):
    s = ClientStorage(server.addr, read_only=True, wait_timeout=WAIT)
    try:
        return s.lastTransaction()
    finally:
        s.close()
