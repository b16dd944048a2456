"""A failed fsync under a running `zrs primary --zeo`: the daemon stops, a restart recovers.

When an fsync of Data.fs fails, nothing written since the last good one
can be trusted to be on disk, and the storage closes itself. The daemon
must then end (exit 1, saying why) so that its service manager restarts
it, rather than go on serving a storage that refuses every commit while
its status and watchdog say all is well. Reopening the file recovers it:
every transaction acknowledged before the failure is there, and the file
passes `zrs fs verify` and ZODB's own FileStorage.

The failure is real, as far as the daemon can tell: strace, attached to
the running process, makes every fsync and fdatasync return EIO.
"""

import shutil
import subprocess
import time

import pytest
import transaction

from zeoserver import ZeoServer

EXIT_WITHIN = 30  # seconds for the daemon to exit once its fsync failed


def commit(db, key, value):
    conn = db.open()
    try:
        conn.root()[key] = value
        transaction.commit()
    finally:
        transaction.abort()
        conn.close()


def test_failed_fsync_stops_the_daemon_and_a_restart_recovers(tmp_path, zrs_bin, run_zrs):
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace not found: run tests/setup.sh", pytrace=False)
    srv = ZeoServer("zrs", tmp_path / "Data.fs", tmp_path, listen="127.0.0.1:0", zrs_bin=zrs_bin,
                    name="zrs fsync-failure")
    srv.start()
    tracer = None
    try:
        # The client's abort after the failed commit waits for a server
        # that has gone: not for long.
        db = srv.db(wait_timeout=3)
        acknowledged = {f"before {i}": i for i in range(5)}
        for k, v in acknowledged.items():
            commit(db, k, v)

        # Every thread of the daemon, from now on: fsync and fdatasync fail.
        tracer = subprocess.Popen(
            [strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync,fdatasync",
             "-e", "inject=fsync,fdatasync:error=EIO", "-p", str(srv.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1)  # strace attaches to every thread
        assert tracer.poll() is None, f"strace did not attach: {tracer.stderr.read().decode()}"

        with pytest.raises(Exception) as failed:
            commit(db, "after", "the fsync fails")
        assert "input/output error" in str(failed.value), repr(failed.value)
        try:
            srv.proc.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            srv.fail(f"still running {EXIT_WITHIN}s after its fsync failed "
                     f"(the client got {failed.value!r})")
        log = srv.log()
        assert srv.proc.returncode == 1, f"exit code {srv.proc.returncode}\n{log[-4000:]}"
        assert "fsync failed, closing the storage" in log, log[-4000:]
        assert "the storage closed after a failed write or fsync" in log, log[-4000:]
        db.close()
    finally:
        if tracer is not None:
            tracer.kill()
            tracer.wait()
        if srv.proc.poll() is None:
            srv.kill()

    # A restart opens the file and recovers it.
    srv.start()
    db = srv.db()
    try:
        conn = db.open()
        root = conn.root()
        for k, v in acknowledged.items():
            assert root.get(k) == v, f"acknowledged {k}={v} lost after the restart: {root.get(k)!r}"
        # Whether the failed commit is there is the open's decision; the
        # database takes new commits either way.
        conn.close()
        commit(db, "after restart", True)
    finally:
        db.close()
    srv.stop()
    run_zrs("fs", "verify", srv.datafs)

    from ZODB.FileStorage import FileStorage
    fs = FileStorage(str(srv.datafs), read_only=True)
    try:
        n = sum(1 for _ in fs.iterator())
        assert n >= len(acknowledged) + 2, f"{n} transactions in the recovered file"
    finally:
        fs.close()


STALL = 8  # seconds each fsync of the daemon is held


def test_stalled_fsync_is_reported(tmp_path, zrs_bin, run_zrs):
    """A disk that stops answering: nothing fails, commits just wait.

    strace holds every fsync of the running daemon for STALL seconds. While
    a commit waits for one, `zrs status` says the storage is stalled, and
    the metric gives how long; once it returns, the commit succeeds and the
    report is gone.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace not found: run tests/setup.sh", pytrace=False)
    admin = str(tmp_path / "admin.sock")
    srv = ZeoServer("zrs", tmp_path / "Data.fs", tmp_path, listen="127.0.0.1:0", zrs_bin=zrs_bin,
                    name="zrs fsync-stall", admin=admin)
    srv.start()
    tracer = None
    try:
        db = srv.db()
        commit(db, "before", 1)
        tracer = subprocess.Popen(
            [strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync",
             "-e", f"inject=fsync:delay_enter={STALL * 1_000_000}", "-p", str(srv.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1)  # strace attaches to every thread
        assert tracer.poll() is None, f"strace did not attach: {tracer.stderr.read().decode()}"

        import threading
        done = {}

        def slow_commit():
            try:
                commit(db, "during", 2)
                done["ok"] = True
            except Exception as e:  # reported below
                done["err"] = e

        th = threading.Thread(target=slow_commit)
        th.start()
        deadline = time.monotonic() + 2 * STALL
        status = ""
        while time.monotonic() < deadline and th.is_alive():
            status = run_zrs("status", admin).stdout
            if "STALLED:" in status:
                break
            time.sleep(0.2)
        assert "STALLED:  the storage's fsync has not returned for" in status, status
        metrics = run_zrs_metrics(admin)
        running = [float(line.split()[1]) for line in metrics.splitlines()
                   if line.startswith("zrs_storage_fsync_running_seconds ")]
        assert running and running[0] >= 5, running
        th.join(STALL * 3)
        assert done.get("ok"), f"the commit behind the slow fsync: {done}"
        tracer.kill()
        tracer.wait()
        tracer = None
        status = run_zrs("status", admin).stdout
        assert "STALLED" not in status, status
        db.close()
    finally:
        if tracer is not None:
            tracer.kill()
            tracer.wait()
    srv.stop()


def run_zrs_metrics(admin):
    """GET /metrics over the admin unix socket."""
    import http.client
    import socket

    class UnixHTTP(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(admin)

    c = UnixHTTP("zrs")
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()
    finally:
        c.close()
