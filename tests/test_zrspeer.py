"""The real zc.zrs 3.1.0 replicating Python to Python (no Go).

This is the baseline the Go replication is held to: what zc.zrs itself does
with these peer scripts (tests/zrspeer/, run under .venv-zrs) must hold when
either side is zrs. A failure here means the peer set-up is broken, not zrs.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from pyfs.compare import assert_same_bytes
from zrspeer.driver import assert_replica, start_primary, start_secondary, wait_caught_up


@pytest.fixture
def peers():
    """Register peers to be killed if a test ends without quitting them."""
    started = []
    yield started.append
    for p in started:
        p.kill()


@pytest.fixture
def sock_dir():
    """A short directory for Unix sockets (paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="zrs-sock-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def commit_mix(primary):
    """About 50 transactions: records of many kinds, undo (backpointers), deleteObject."""
    primary.ask("commit 20")
    primary.ask("undo")
    primary.ask("delete")
    primary.ask("commit 20")
    primary.ask("undo")
    primary.ask("undo")  # undo of the undo: a backpointer to a backpointer
    primary.ask("delete")
    return primary.ask("commit 5")


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_secondary_replicates_everything(transport, tmp_path, sock_dir, peers):
    addr = "127.0.0.1:0" if transport == "tcp" else str(sock_dir / "primary.sock")
    primary = start_primary(tmp_path / "primary.fs", addr, tmp_path / "primary.log")
    peers(primary)
    secondary = start_secondary(tmp_path / "secondary.fs", primary.addr,
                                tmp_path / "secondary.log")
    peers(secondary)

    tid = commit_mix(primary)
    wait_caught_up(secondary, tid)
    secondary.quit()
    primary.quit()

    txns = assert_replica(tmp_path / "primary.fs", tmp_path / "secondary.fs")
    assert len(txns) >= 50
    assert any(r["data_txn"] for t in txns for r in t["records"]), "no undo backpointer"
    assert any(r["data_len"] == 0 for t in txns for r in t["records"]), "no deleted object"
    # zc.zrs itself re-pickles the extension to the same bytes, so Python to
    # Python the replica is byte-identical (zrs only has to match the dump).
    assert_same_bytes(tmp_path / "primary.fs", tmp_path / "secondary.fs")


def test_secondary_resumes_from_its_last_transaction(tmp_path, peers):
    """A restarted secondary sends its lastTransaction and gets only what follows."""
    primary = start_primary(tmp_path / "primary.fs", "127.0.0.1:0", tmp_path / "primary.log")
    peers(primary)
    secondary = start_secondary(tmp_path / "secondary.fs", primary.addr,
                                tmp_path / "secondary1.log")
    peers(secondary)
    wait_caught_up(secondary, primary.ask("commit 10"))
    secondary.quit()

    tid = primary.ask("commit 10")  # committed while no secondary is connected
    secondary = start_secondary(tmp_path / "secondary.fs", primary.addr,
                                tmp_path / "secondary2.log")
    peers(secondary)
    wait_caught_up(secondary, tid)
    wait_caught_up(secondary, primary.ask("commit 5"))  # and live again
    secondary.quit()
    primary.quit()

    starts = [line for line in (tmp_path / "primary.log").read_text().splitlines()
              if ": start b" in line]
    assert len(starts) == 2, starts
    assert "(1900-01-01" in starts[0], starts  # z64: from the beginning
    assert "(1900-01-01" not in starts[1], starts  # from its lastTransaction
    assert_replica(tmp_path / "primary.fs", tmp_path / "secondary.fs")


def test_secondary_started_first_connects_when_the_primary_appears(tmp_path, sock_dir, peers):
    addr = str(sock_dir / "primary.sock")
    secondary = start_secondary(tmp_path / "secondary.fs", addr, tmp_path / "secondary.log")
    peers(secondary)
    assert secondary.ask("lasttid") == "00" * 8
    primary = start_primary(tmp_path / "primary.fs", addr, tmp_path / "primary.log")
    peers(primary)
    wait_caught_up(secondary, primary.ask("commit 5"))
    secondary.quit()
    primary.quit()
    assert_replica(tmp_path / "primary.fs", tmp_path / "secondary.fs")
