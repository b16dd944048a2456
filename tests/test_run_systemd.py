"""`zrs run --config` under systemd-socket-activate, as the zrs@.service
template runs it from socket units.

systemd-socket-activate (Debian's systemd package) listens on two TCP
sockets, named "zeo" and "replication" (FileDescriptorName=), and on the
first connection execs `zrs run` with them (LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES) and a NOTIFY_SOCKET this test reads. Through the
inherited sockets only: a real Python ZODB application commits with
ClientStorage, and `zrs secondary` replicates. The test's notify socket
must receive READY=1, then STATUS lines that follow the commits, the
secondary and the ZEO client, watchdog pings, and STOPPING=1 on SIGTERM,
after which zrs exits 0 and both files verify and are identical.

A missing systemd-socket-activate fails the test (tests/setup.sh installs
the systemd package).
"""

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from zeoserver import CLIENT_TIMEOUT, STOP_TIMEOUT, _free_port, raw_connect, recv_frame

WAIT = 30  # seconds for any one expected event


class NotifySocket:
    """A unixgram NOTIFY_SOCKET that keeps every datagram, in order."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._cond:
                self.msgs.append(data.decode())
                self._cond.notify_all()

    def wait_for(self, what, match, start=0, log=None):
        """Index of the first message at or after start that match() accepts."""
        def found():
            return next((i for i in range(start, len(self.msgs)) if match(self.msgs[i])), None)
        with self._cond:
            if self._cond.wait_for(lambda: found() is not None, WAIT):
                return found()
            got = list(self.msgs)
        pytest.fail(f"no {what} on NOTIFY_SOCKET within {WAIT}s; got {got}\n"
                    f"--- zrs log ---\n{log() if log else ''}", pytrace=False)

    def close(self):
        self.sock.close()


def wait_port(port):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {WAIT}s", pytrace=False)


@pytest.fixture
def workdir():
    # A short path: unix socket names are limited to ~107 bytes.
    d = Path(tempfile.mkdtemp(prefix="zrs-run-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_run_under_systemd_socket_activate(zrs_bin, run_zrs, workdir):
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.fail("systemd-socket-activate not found: run tests/setup.sh (Debian package systemd)",
                    pytrace=False)
    zeo_port, repl_port = _free_port(), _free_port()
    ppath, spath = workdir / "main" / "Data.fs", workdir / "replica" / "Data.fs"
    ppath.parent.mkdir()
    spath.parent.mkdir()
    config = workdir / "main.yaml"
    config.write_text(
        "name: main\n"
        "role: primary\n"
        f"path: {ppath}\n"
        "zeo:\n"
        f"  address: 127.0.0.1:{zeo_port}\n"
        "replication:\n"
        f"  listen: 127.0.0.1:{repl_port}\n")
    notify = NotifySocket(workdir / "notify.sock")
    plog_path, slog_path = workdir / "main.log", workdir / "replica.log"
    procs = []

    def plog():
        return plog_path.read_text(errors="replace")[-6000:]

    def start(argv, log_path):
        with open(log_path, "w") as log:
            p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        procs.append(p)
        return p

    try:
        primary = start([activate, "-l", f"127.0.0.1:{zeo_port}", "-l", f"127.0.0.1:{repl_port}",
                         "--fdname=zeo:replication", "-E", f"NOTIFY_SOCKET={notify.path}",
                         "-E", "WATCHDOG_USEC=2000000",
                         zrs_bin, "run", "--config", config], plog_path)
        wait_port(zeo_port)  # systemd-socket-activate listens; zrs starts on a connection

        # The first connection makes systemd-socket-activate exec zrs, which
        # takes it from the inherited socket and greets it as ZEO 5 does.
        with raw_connect(("127.0.0.1", zeo_port), timeout=WAIT) as s:
            assert recv_frame(s) == b"Z5"
        ready = notify.wait_for("READY=1", lambda m: m == "READY=1", log=plog)
        assert not any(m.startswith("STATUS=") for m in notify.msgs[:ready]), notify.msgs
        first = notify.wait_for("STATUS", lambda m: m.startswith("STATUS="), ready, log=plog)
        assert notify.msgs[first].startswith("STATUS=main: primary, last tid 0000000000000000"), \
            notify.msgs[first]
        log = plog()
        assert "using the ZEO socket passed by systemd" in log, log
        assert "using the replication socket passed by systemd" in log, log

        # A real ZODB application commits through the inherited ZEO socket.
        import ZODB
        import transaction
        from ZEO.ClientStorage import ClientStorage
        db = ZODB.DB(ClientStorage(("127.0.0.1", zeo_port), wait_timeout=CLIENT_TIMEOUT))
        try:
            for i in range(20):
                with db.transaction(f"commit {i}") as conn:
                    conn.root()[f"k{i}"] = i * i
            last = db.lastTransaction().hex()
            assert last != "0" * 16

            # A zrs secondary replicates from the inherited replication socket.
            secondary = start([zrs_bin, "secondary", spath,
                               "--replicate-from", f"127.0.0.1:{repl_port}"], slog_path)
            notify.wait_for(
                "a STATUS with the commits, the secondary and the ZEO client",
                lambda m: m == f"STATUS=main: primary, last tid {last}, 1 secondary, 1 ZEO client",
                first, log=plog)
        finally:
            db.close()
            transaction.abort()
        notify.wait_for("WATCHDOG=1", lambda m: m == "WATCHDOG=1", ready, log=plog)

        deadline = time.monotonic() + WAIT
        while ppath.read_bytes() != spath.read_bytes():
            if time.monotonic() > deadline:
                pytest.fail(f"secondary did not catch up\n--- secondary ---\n"
                            f"{slog_path.read_text()[-4000:]}\n--- primary ---\n{plog()}",
                            pytrace=False)
            time.sleep(0.05)

        primary.send_signal(signal.SIGTERM)
        assert primary.wait(STOP_TIMEOUT) == 0, plog()
        notify.wait_for("STOPPING=1", lambda m: m.startswith("STOPPING=1"), ready, log=plog)
        secondary.send_signal(signal.SIGTERM)
        assert secondary.wait(STOP_TIMEOUT) == 0, slog_path.read_text()
        assert "primary stopped" in plog()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        notify.close()

    for path in (ppath, spath):
        run_zrs("fs", "verify", path)
    assert ppath.read_bytes() == spath.read_bytes()
    # What the application wrote, read back from the replica with Python ZODB.
    import ZODB.FileStorage
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(spath), read_only=True))
    try:
        with db.transaction() as conn:
            assert {k: v for k, v in conn.root().items()} == {f"k{i}": i * i for i in range(20)}
    finally:
        db.close()
