"""An unmodified ZEO application on a zrs primary with synchronous replication.

`zrs primary --durability sync` answers a commit's tpc_finish only once a
secondary acknowledged it. The application's other threads share its one
ClientStorage connection: their requests must not wait behind a commit
that waits for a secondary. When no secondary answers in time the commit
fails (on-sync-timeout fail), yet it is committed: other clients see it.
zrs-only: runzeo has no replication.
"""

import json
import subprocess
import threading
import time

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZEO.ClientStorage import ClientStorage

from zeoserver import ZeoServer, wait_until

WAIT = 20  # seconds for each step before the test fails
SYNC_TIMEOUT = 8  # seconds a commit waits for the secondary


def test_sync_commit_does_not_hold_the_other_threads(zrs_bin, tmp_path):
    primary = ZeoServer("zrs", tmp_path / "p" / "Data.fs", tmp_path, listen="127.0.0.1:0",
                        replicate=True, zrs_bin=zrs_bin, name="zrs sync primary",
                        admin=str(tmp_path / "primary-admin.sock"),
                        extra_args=["--durability", "sync", "--quorum", "1",
                                    "--sync-timeout", f"{SYNC_TIMEOUT}s",
                                    "--on-sync-timeout", "fail"]).start()
    secondary = ZeoServer("zrs", tmp_path / "s" / "Data.fs", tmp_path, listen="127.0.0.1:0",
                          role="secondary", upstream=primary, zrs_bin=zrs_bin,
                          name="zrs secondary").start()
    db = None
    try:
        # The root's creation is a sync commit too: the secondary is up.
        db = ZODB.DB(ClientStorage(primary.addr, wait_timeout=WAIT))
        with db.transaction() as conn:
            conn.root()["n"] = 0
            conn.root()["m"] = PersistentMapping()
        storage = db.storage
        last = storage.lastTransaction()

        # The quorum goes away: the next commit waits SYNC_TIMEOUT, then fails.
        secondary.stop()
        outcome = {}

        def commit():
            tm = transaction.TransactionManager()
            conn = db.open(transaction_manager=tm)
            try:
                tm.begin()
                conn.root()["n"] = 1
                tm.commit()
                outcome["result"] = "committed"
            except Exception as e:  # the failure is what we look at
                outcome["result"] = e
                tm.abort()
            finally:
                conn.close()

        committer = threading.Thread(target=commit)
        started = time.monotonic()
        committer.start()
        # The commit waits once it is in the primary's storage (its last
        # tid in /status), before other clients may see it.
        wait_until("the commit reaching the primary's storage",
                   lambda: _storage_last(zrs_bin, primary) != last.hex())
        # Another thread of the same application, on the same ClientStorage:
        # history() always asks the server.
        hist = storage.history(b"\0" * 8, 1)
        answered = time.monotonic() - started
        assert committer.is_alive(), (
            f"the committing thread ended ({outcome}) before the other thread's request was "
            f"answered ({answered:.1f}s): the request waited behind the commit")
        assert hist and hist[0]["tid"] == last, hist

        committer.join(WAIT + SYNC_TIMEOUT)
        assert not committer.is_alive()
        result = outcome["result"]
        assert isinstance(result, Exception), f"the commit without a secondary: {result}"
        assert "not acknowledged by enough secondaries" in str(result), repr(result)
        # Failed for the application, yet committed on the primary.
        other = ZODB.DB(ClientStorage(primary.addr, read_only=True, wait_timeout=WAIT))
        try:
            with other.transaction() as conn:
                assert conn.root()["n"] == 1
        finally:
            other.close()
    finally:
        if db is not None:
            db.close()
        secondary.stop()
        primary.stop()


def _storage_last(zrs_bin, server):
    out = subprocess.run([str(zrs_bin), "status", server.admin, "--json"], capture_output=True,
                         text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["last_tid"]
