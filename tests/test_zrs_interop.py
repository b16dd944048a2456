"""zrs replicating to and from the real zc.zrs 3.1.0, both directions.

- a zc.zrs primary (Python) streams to `zrs secondary`: the Go replica must
  be byte-identical to the Python primary, across restarts and kill -9;
- `zrs primary` streams a Go-written database to a zc.zrs secondary, across
  a primary restart on a longer file, and live through a `zrs secondary
  --replicate-to` relay;
- through tests/faultproxy, connections cut mid-frame and a bit flipped in a
  data record: the receiver never applies a broken transaction, resumes from
  its last commit and ends identical.

The peers are the scripts of tests/zrspeer (see test_zrspeer.py for the
Python-to-Python baseline these tests mirror).
"""

import json
import pickle
import queue
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, go_build
from pyfs.compare import assert_same_bytes
from zrspeer.driver import (
    assert_replica, pydump, replica_view, start_primary, start_secondary, wait_caught_up,
)

WAIT = 60  # seconds: the bound of every wait in this file
Z64 = "00" * 8


# --- processes ---------------------------------------------------------------

@pytest.fixture
def procs():
    """Register processes (anything with .kill()) to be killed if a test ends early."""
    started = []
    yield started.append
    for p in reversed(started):
        p.kill()


@pytest.fixture
def sock_dir():
    """A short directory for Unix sockets (paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="zrs-sock-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def faultproxy_bin(bin_dir):
    return go_build(bin_dir, "./tests/faultproxy", "faultproxy")


def wait_for(what, pred, timeout=WAIT, interval=0.05, on_fail=None):
    """Poll pred() until it returns a true value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            msg = f"not {what} after {timeout}s"
            if on_fail:
                on_fail(msg)
            pytest.fail(msg, pytrace=False)
        time.sleep(interval)


class GoDaemon:
    """`zrs primary` or `zrs secondary` as a subprocess, logging (debug) to a file."""

    def __init__(self, zrs_bin, name, argv, log_path):
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([str(zrs_bin)] + [str(a) for a in argv] + ["--log-level", "debug"],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def fail(self, msg):
        pytest.fail(f"{self.name}: {msg}\n--- {self.log_path} (tail) ---\n{self.log()[-4000:]}",
                    pytrace=False)

    def check_running(self):
        if self.proc.poll() is not None:
            self.fail(f"exited with {self.proc.returncode}")

    def wait_log(self, pattern):
        """The first match of the regexp in the log, waiting for it."""
        def found():
            self.check_running()
            return re.search(pattern, self.log())
        return wait_for(f"logged {pattern!r}", found, on_fail=self.fail)

    def stop(self):
        """SIGTERM: a graceful stop must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
                self.fail(f"still running {WAIT}s after SIGTERM")
        self._log.close()
        if self.proc.returncode != 0:
            self.fail(f"exit code {self.proc.returncode} after SIGTERM")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def go_primary(zrs_bin, datafs, addr, log_path):
    """`zrs primary`; .addr is the address it listens on (port 0 resolved)."""
    d = GoDaemon(zrs_bin, "zrs primary", ["primary", datafs, "--replicate-to", addr], log_path)
    d.addr = d.wait_log(r'msg="listening for secondaries".* addr=(\S+)').group(1)
    d.wait_log(r'msg="primary started"')
    return d


def go_secondary(zrs_bin, datafs, addr, log_path, relay_to=None, protocol=None):
    argv = ["secondary", datafs, "--replicate-from", addr]
    if relay_to:
        argv += ["--replicate-to", relay_to]
    if protocol:
        argv += ["--protocol", protocol]
    d = GoDaemon(zrs_bin, "zrs secondary", argv, log_path)
    d.path = Path(datafs)
    return d


def last_tid(run_zrs, path):
    """The last complete transaction of a FileStorage (hex), Z64 when none.

    `zrs fs dump` stops before a transaction still being written, so this
    is safe while a zrs secondary appends to the file.
    """
    if not Path(path).exists():
        return Z64
    proc = run_zrs("fs", "dump", "--json", path, check=False)
    if proc.returncode != 0:  # a file being created: not even a header yet
        return None
    lines = proc.stdout.splitlines()
    return json.loads(lines[-1])["tid"] if lines else Z64


def wait_go_caught_up(run_zrs, daemon, tid):
    """Wait until the Go secondary's file ends with tid; never past it."""
    def reached():
        daemon.check_running()
        got = last_tid(run_zrs, daemon.path)
        if got is not None and got > tid:
            daemon.fail(f"last transaction {got} is past the primary's {tid}")
        return got == tid
    wait_for(f"caught up to {tid}", reached, on_fail=daemon.fail)


def check_file(run_zrs, path):
    """zrs's verify and ZODB's fstest both accept the file."""
    run_zrs("fs", "verify", path)
    proc = subprocess.run([sys.executable, "-m", "ZODB.scripts.fstest", str(path)],
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, f"fstest {path}: {proc.stdout}{proc.stderr}"


def assert_prefix(got, whole, got_name, whole_name):
    """got is a prefix of whole, with at least one transaction."""
    if len(got) > len(whole) or not whole.startswith(got):
        at = next((i for i, (a, b) in enumerate(zip(got, whole)) if a != b), len(whole))
        pytest.fail(f"{got_name} ({len(got)} bytes) is not a prefix of {whole_name}"
                    f" ({len(whole)} bytes): they differ from byte {at}", pytrace=False)
    if len(got) <= 4:
        pytest.fail(f"{got_name}: no transaction at all", pytrace=False)


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


def assert_varied(txns):
    """The database exercises what replication must carry."""
    recs = [r for t in txns for r in t["records"]]
    assert any(r["data_txn"] for r in recs), "no backpointer"
    assert any(r["data_len"] == 0 for r in recs), "no deletion"
    assert any(t["extension"] for t in txns), "no extension"
    assert any(isinstance(t["user"], str) and not t["user"].isascii() for t in txns), "no non-ASCII"


def primary_starts(log_text):
    """The start tids the Go primary logged, one per secondary connection."""
    return re.findall(r'msg="secondary connected".* tid=([0-9a-f]{16})', log_text)


# --- zc.zrs primary -> zrs secondary ------------------------------------------

def test_zc_zrs_primary_to_zrs_secondary(run_zrs, zrs_bin, tmp_path, sock_dir, procs):
    """Catch-up, live streaming and a restart: the replica is byte-identical."""
    pfs, sfs = tmp_path / "primary.fs", tmp_path / "secondary.fs"
    primary = start_primary(pfs, str(sock_dir / "p.sock"), tmp_path / "primary.log")
    procs(primary)
    primary.ask("commit 10")  # before the secondary exists: catch-up
    sec = go_secondary(zrs_bin, sfs, primary.addr, tmp_path / "secondary.log")
    procs(sec)
    wait_go_caught_up(run_zrs, sec, commit_mix(primary))  # live

    primary.ask("commit 10")
    sec.stop()  # possibly in the middle of those ten
    tid = primary.ask("commit 10")  # while it is down
    sec = go_secondary(zrs_bin, sfs, primary.addr, tmp_path / "secondary.log")
    procs(sec)
    wait_go_caught_up(run_zrs, sec, tid)
    wait_go_caught_up(run_zrs, sec, primary.ask("commit 5"))  # live again
    sec.stop()
    primary.quit()

    starts = [line for line in (tmp_path / "primary.log").read_text().splitlines()
              if ": start b" in line]
    assert len(starts) == 2, starts
    assert "(1900-01-01" in starts[0], starts  # z64: from the beginning
    assert "(1900-01-01" not in starts[1], starts  # resumed from its last transaction
    txns = assert_replica(pfs, sfs)
    assert len(txns) >= 85
    assert_varied(txns)
    # zrs re-pickles the extension the way CPython does, so the whole file
    # is identical, not only its dump.
    assert_same_bytes(pfs, sfs)
    check_file(run_zrs, sfs)


def test_zrs_secondary_killed_mid_stream(run_zrs, run_fstool, zrs_bin, tmp_path, sock_dir, procs):
    """kill -9 the Go secondary six times while the primary keeps committing.

    After each kill the file, once recovered the way a restart recovers it,
    passes verify and fstest and is a byte prefix of the primary's; the
    restarted secondary resumes, and in the end the files are identical.
    """
    pfs, sfs = tmp_path / "primary.fs", tmp_path / "secondary.fs"
    primary = start_primary(pfs, str(sock_dir / "p.sock"), tmp_path / "primary.log")
    procs(primary)
    primary.ask("commit 20")
    stop, errors = threading.Event(), []

    def committer():
        try:
            for i in range(10**6):
                if stop.is_set():
                    break
                primary.ask(("commit 2", "undo", "commit 1", "delete")[i % 4])
                time.sleep(0.01)
        except BaseException as e:  # a pytest failure in the thread
            errors.append(e)

    sec = go_secondary(zrs_bin, sfs, primary.addr, tmp_path / "secondary.log")
    procs(sec)
    thread = threading.Thread(target=committer, daemon=True)
    thread.start()
    rng = random.Random(3)
    copies = []
    try:
        for i in range(6):
            # Let it apply something first, then kill at a random moment.
            start = last_tid(run_zrs, sfs)
            wait_for("progressing", lambda: last_tid(run_zrs, sfs) != start, on_fail=sec.fail)
            time.sleep(rng.uniform(0.0, 0.3))
            sec.kill()
            copies.append(shutil.copyfile(sfs, tmp_path / f"killed{i}.fs"))
            sec = go_secondary(zrs_bin, sfs, primary.addr, tmp_path / "secondary.log")
            procs(sec)
    finally:
        stop.set()
        thread.join(WAIT)
    assert not errors, errors
    tid = primary.ask("lasttid")
    wait_go_caught_up(run_zrs, sec, tid)
    sec.stop()
    primary.quit()

    final = pfs.read_bytes()
    for raw in copies:
        recovered = shutil.copyfile(raw, raw.with_suffix(".recovered.fs"))
        run_fstool("open", recovered)  # crash recovery, as the restart does
        check_file(run_zrs, recovered)
        got = recovered.read_bytes()
        assert_prefix(got, final, f"{raw.name} once recovered", "the primary's file")
        # What was on disk at the kill holds the recovered file as a prefix too.
        assert_prefix(got, raw.read_bytes(), f"{raw.name} once recovered", "the killed file")
    txns = assert_replica(pfs, sfs)
    assert len(txns) > 20
    assert_varied(txns)
    assert_same_bytes(pfs, sfs)
    check_file(run_zrs, sfs)
    assert len(re.findall(r'msg="secondary started"', sec.log())) == 7


# --- zrs primary -> zc.zrs secondary ------------------------------------------

def zodb551_replica_view(txns):
    """What a zc.zrs secondary writes from these transactions, in the dump.

    It runs ZODB 5.5.1, which differs from the source in two documented
    ways, both in Python and neither in the stream:
    - it writes nothing for a transaction without records;
    - restore() with data_txn points at the FIRST record of the oid in
      data_txn (later ZODB takes the last one), so when that transaction
      holds several records of the oid (an undo of two transactions in
      one), the backpointer, and every backpointer chained to it, carries
      that first record's data. Those records keep everything but the data.
    """
    first = {}  # (tid, oid) -> (data_len, sha1) of the first record in that txn
    wrong = set()  # (tid, oid) whose replica data is the first record's
    out = []
    for t in replica_view(txns):
        if not t["records"]:
            continue
        counts = {}
        for r in t["records"]:
            counts[r["oid"]] = counts.get(r["oid"], 0) + 1
        recs = []
        for r in t["records"]:
            key = (r["data_txn"], r["oid"])
            if r["data_txn"] and (counts_of(out, r["data_txn"], r["oid"]) > 1 or key in wrong):
                r = dict(r, data_len=first[key][0], sha1=first[key][1])
                wrong.add((r["tid"], r["oid"]))
            first.setdefault((r["tid"], r["oid"]), (r["data_len"], r["sha1"]))
            recs.append(r)
        out.append(dict(t, records=recs))
    return out


def counts_of(txns, tid, oid):
    for t in txns:
        if t["tid"] == tid:
            return sum(r["oid"] == oid for r in t["records"])
    return 0


def assert_zc_replica(source, replica):
    want, got = zodb551_replica_view(pydump(source)), replica_view(pydump(replica))
    assert len(want) == len(got), f"{len(want)} transactions with records, {len(got)} replicated"
    for a, b in zip(want, got):
        assert a == b, f"replica differs at tid {a['tid']}:\n  source:  {a}\n  replica: {b}"
    return want


def go_source(run_fstool, path, txns, seed):
    out = json.loads(run_fstool("write", path, "--txns", txns, "--seed", seed).stdout)
    assert out["stats"].get("undo_txns") and out["stats"].get("deletes") \
        and out["stats"].get("restored_txns"), out
    return out


def last_with_records(txns):
    return [t for t in txns if t["records"]][-1]["tid"]


def test_zrs_primary_to_zc_zrs_secondary(run_zrs, run_fstool, zrs_bin, tmp_path, sock_dir, procs):
    """A Go-written database, then the primary restarted on a longer file."""
    full = tmp_path / "full.fs"
    go_source(run_fstool, full, 160, 11)
    txns = pydump(full)
    assert_varied(txns)
    # The first run serves a prefix ending at a transaction boundary.
    cut = next(i for i in range(90, len(txns)) if txns[i - 1]["records"])
    pfs, sfs = tmp_path / "primary.fs", tmp_path / "secondary.fs"
    pfs.write_bytes(full.read_bytes()[:txns[cut]["pos"]])
    addr = str(sock_dir / "p.sock")
    primary = go_primary(zrs_bin, pfs, addr, tmp_path / "primary.log")
    procs(primary)
    secondary = start_secondary(sfs, primary.addr, tmp_path / "secondary.log")
    procs(secondary)
    wait_caught_up(secondary, last_with_records(txns[:cut]))
    primary.stop()

    shutil.copyfile(full, pfs)  # the primary's file grew while it was down
    pfs.with_name(pfs.name + ".index").unlink(missing_ok=True)
    primary = go_primary(zrs_bin, pfs, addr, tmp_path / "primary.log")
    procs(primary)
    wait_caught_up(secondary, last_with_records(txns))
    secondary.quit()
    primary.stop()

    starts = primary_starts(primary.log())
    assert len(starts) >= 2 and starts[0] == Z64 and starts[-1] == txns[cut - 1]["tid"], starts
    got = assert_zc_replica(full, sfs)
    assert len(got) >= 140


def test_live_through_zrs_relay(run_zrs, zrs_bin, tmp_path, sock_dir, procs):
    """zc.zrs primary -> zrs secondary --replicate-to -> zc.zrs secondary, live.

    The relay's primary side streams each commit as the relay applies it:
    the Go primary under live commits, to a Python secondary.
    """
    pfs, rfs, sfs = tmp_path / "primary.fs", tmp_path / "relay.fs", tmp_path / "secondary.fs"
    primary = start_primary(pfs, str(sock_dir / "p.sock"), tmp_path / "primary.log")
    procs(primary)
    primary.ask("commit 5")
    relay = go_secondary(zrs_bin, rfs, primary.addr, tmp_path / "relay.log",
                         relay_to=str(sock_dir / "r.sock"))
    procs(relay)
    relay.wait_log(r'msg="listening for secondaries"')
    secondary = start_secondary(sfs, str(sock_dir / "r.sock"), tmp_path / "secondary.log")
    procs(secondary)
    tid = commit_mix(primary)
    wait_caught_up(secondary, tid)
    wait_caught_up(secondary, primary.ask("commit 10"))
    secondary.quit()
    relay.stop()
    primary.quit()
    assert_varied(assert_replica(pfs, sfs))
    assert_same_bytes(pfs, rfs)
    assert_same_bytes(pfs, sfs)


def test_extension_objects_both_ways(run_zrs, zrs_bin, tmp_path, sock_dir, procs):
    """Extensions holding objects, which an application using FileStorage
    directly can write (datetime, Decimal, set, UUID, OrderedDict, deque):
    zc.zrs -> zrs, then zrs -> zrs over zrs3 and zrs2 and zrs -> zc.zrs, and
    every replica is byte-identical to the Python-written file.
    """
    pfs, from_zc = tmp_path / "primary.fs", tmp_path / "from-zc.fs"
    primary = start_primary(pfs, str(sock_dir / "p.sock"), tmp_path / "primary.log")
    procs(primary)
    primary.ask("commit 3")
    ext_tid = primary.ask("objext")
    tid = primary.ask("commit 2")
    sec = go_secondary(zrs_bin, from_zc, primary.addr, tmp_path / "from-zc.log")
    procs(sec)
    wait_go_caught_up(run_zrs, sec, tid)
    sec.stop()
    primary.quit()
    want = python_extension(pfs, ext_tid)
    assert "Decimal('-12.50')" in want and "UUID(" in want and "OrderedDict(" in want, want
    assert_same_bytes(pfs, from_zc)

    zrs_primary = go_primary(zrs_bin, pfs, str(sock_dir / "g.sock"), tmp_path / "zrs-primary.log")
    procs(zrs_primary)
    replicas = {}
    for proto in ("zrs3", "zrs2"):
        d = go_secondary(zrs_bin, tmp_path / f"{proto}.fs", zrs_primary.addr,
                         tmp_path / f"{proto}.log", protocol=proto)
        procs(d)
        replicas[proto] = d
    zc = start_secondary(tmp_path / "zc.fs", zrs_primary.addr, tmp_path / "zc.log")
    procs(zc)
    wait_caught_up(zc, tid)
    zc.quit()
    for proto, d in replicas.items():
        wait_go_caught_up(run_zrs, d, tid)
        d.stop()
    zrs_primary.stop()
    assert "stream failed" not in zrs_primary.log()
    for name in ("zrs3", "zrs2", "zc"):
        assert_same_bytes(pfs, tmp_path / f"{name}.fs")
        assert python_extension(tmp_path / f"{name}.fs", ext_tid) == want
    check_file(run_zrs, tmp_path / "zrs3.fs")


def python_extension(path, tid):
    """The repr of transaction tid's extension as Python ZODB loads it from path."""
    script = (
        "import sys\n"
        "from ZODB.FileStorage import FileStorage\n"
        "fs = FileStorage(sys.argv[1], read_only=True)\n"
        "t = next(iter(fs.iterator(bytes.fromhex(sys.argv[2]))))\n"
        "print(repr(sorted(t.extension.items())))\n"
        "fs.close()\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path), tid],
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- faults -------------------------------------------------------------------

class FaultProxy:
    """tests/faultproxy: one command per line, one JSON reply each."""

    def __init__(self, binary, target, log_path):
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0", "--target", target, "-v"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.addr = self._reply()["listen"]

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _reply(self):
        try:
            line = self._lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("faultproxy: no reply", pytrace=False)
        assert line is not None, "faultproxy exited"
        r = json.loads(line)
        assert r["ok"], r
        return r

    def do(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def stats(self):
        return self.do("stats")["stats"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def tcp_addr(addr):
    host, _, port = addr.rpartition(":")
    return (host or "127.0.0.1", int(port))


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def record_stream(addr, start, end):
    """The primary's stream to a secondary whose last transaction is start.

    Connects as a zrs2.0 secondary and reads up to the commit of end. Returns
    one dict per transaction: tid, its first and past-the-end stream offsets
    and the (offset, length) of each data frame, offsets counted from the
    connection's start as the fault proxy counts them.
    """
    txns, off, cur, want_data = [], 0, None, False
    with socket.create_connection(tcp_addr(addr), timeout=WAIT) as s:
        for payload in (b"zrs2.0", bytes.fromhex(start)):
            s.sendall(struct.pack(">I", len(payload)) + payload)
        while not txns or txns[-1]["tid"] != end or cur is not None:
            n, = struct.unpack(">I", read_exact(s, 4))
            payload = read_exact(s, n)
            if want_data:
                cur["data"].append((off, n))
                want_data = False
            else:
                kind, args = pickle.loads(payload)
                if kind == "T":
                    cur = {"tid": args[0].hex(), "start": off, "data": []}
                elif kind == "S":
                    want_data = True
                elif kind == "C":
                    cur["end"] = off + 4 + n
                    txns.append(cur)
                    cur = None
                else:
                    raise AssertionError(f"unexpected {kind!r} at stream offset {off}")
            off += 4 + n
    return txns


def inject(proxy, fault_commands, clear_commands):
    """Run faults on exactly one connection of the receiver.

    New connections are refused between faults; this lets one in (held by a
    stall so the fault is set before its first byte), refuses the next ones,
    sets the fault, and waits until that connection is closed.
    """
    assert proxy.stats()["active"] == 0
    proxy.do("stall s2c on")
    proxy.do("refuse off")
    wait_for("connected through the proxy", lambda: proxy.stats()["active"] >= 1)
    proxy.do("refuse on")
    for c in fault_commands:
        proxy.do(c)
    proxy.do("stall s2c off")
    wait_for("disconnected", lambda: proxy.stats()["active"] == 0)
    for c in clear_commands:
        proxy.do(c)


def run_faults(proxy, source_addr, last, wait_exact, cuts=4):
    """A flipped bit in a data record, then cuts in the middle of data frames.

    The source is static (its last transaction is last); wait_exact(tid)
    waits until the receiver holds exactly what the source has up to tid,
    failing if it goes past it, and returns the receiver's last
    transaction, from which it resumes. Each fault's expected outcome is
    exact: every transaction before the damaged one applied, none from it on.
    """
    proxy.do("refuse on")
    done = Z64
    layout = record_stream(source_addr, done, last)
    # The flip: the middle of a data frame of the third transaction on.
    j, (off, n) = next((i, d) for i, t in enumerate(layout) if i >= 2 for d in t["data"] if d[1] >= 16)
    flip = f"flip s2c {off + 4 + n // 2} 3"
    inject(proxy, [flip], [flip])  # the same flip again cancels it for new connections
    done = wait_exact(layout[j - 1]["tid"])
    assert proxy.stats()["flipped"] == 1
    for k in range(cuts):
        layout = record_stream(source_addr, done, last)
        assert len(layout) >= 2, f"stream too short for cut {k}"
        j = max(1, len(layout) // (cuts - k + 1))
        j = next(i for i in range(j, len(layout)) if layout[i]["data"])
        off, n = layout[j]["data"][len(layout[j]["data"]) // 2]
        before = proxy.stats()["cuts"]
        inject(proxy, [f"cut s2c {off + 4 + max(1, n // 2)}"], ["cut s2c off"])
        assert proxy.stats()["cuts"] == before + 1
        done = wait_exact(layout[j - 1]["tid"])
    proxy.do("heal")
    wait_exact(last)


def test_faults_zc_zrs_primary_to_zrs_secondary(run_zrs, zrs_bin, faultproxy_bin, tmp_path, procs):
    pfs, sfs = tmp_path / "primary.fs", tmp_path / "secondary.fs"
    primary = start_primary(pfs, "127.0.0.1:0", tmp_path / "primary.log")
    procs(primary)
    primary.ask("commit 15")
    primary.ask("undo")
    primary.ask("delete")
    last = primary.ask("commit 25")
    proxy = FaultProxy(faultproxy_bin, primary.addr, tmp_path / "proxy.log")
    procs(proxy)
    proxy.do("refuse on")
    sec = go_secondary(zrs_bin, sfs, proxy.addr, tmp_path / "secondary.log")
    procs(sec)
    # The secondary tries zrs3 first and takes two refusals for a zc.zrs
    # primary; the proxy refuses everything until then, so the one
    # connection each fault lets through is a zrs2 stream, not a zrs3
    # attempt that zc.zrs would close before the fault is reached.
    wait_for("the secondary to fall back to zrs2",
             lambda: "replicating with zrs2.0" in sec.log())

    def wait_exact(tid):
        wait_go_caught_up(run_zrs, sec, tid)
        return tid

    run_faults(proxy, primary.addr, last, wait_exact)
    sec.stop()
    proxy.kill()
    primary.quit()
    assert "checksum mismatch" in sec.log(), "the flipped bit went unnoticed"
    assert_replica(pfs, sfs)
    assert_same_bytes(pfs, sfs)
    check_file(run_zrs, sfs)


def test_faults_zrs_primary_to_zc_zrs_secondary(run_zrs, run_fstool, zrs_bin, faultproxy_bin,
                                               tmp_path, procs):
    pfs, sfs = tmp_path / "primary.fs", tmp_path / "secondary.fs"
    go_source(run_fstool, pfs, 120, 5)
    txns = pydump(pfs)
    primary = go_primary(zrs_bin, pfs, "127.0.0.1:0", tmp_path / "primary.log")
    procs(primary)
    proxy = FaultProxy(faultproxy_bin, primary.addr, tmp_path / "proxy.log")
    procs(proxy)
    proxy.do("refuse on")
    secondary = start_secondary(sfs, proxy.addr, tmp_path / "secondary.log")
    procs(secondary)
    with_records = {t["tid"] for t in txns if t["records"]}

    def wait_exact(tid):
        # ZODB 5.5.1 drops transactions without records: wait for the last
        # one it keeps.
        keep = [t["tid"] for t in txns if t["tid"] <= tid and t["tid"] in with_records]
        wait_caught_up(secondary, keep[-1] if keep else Z64)
        return keep[-1] if keep else Z64

    run_faults(proxy, primary.addr, txns[-1]["tid"], wait_exact)
    secondary.quit()
    proxy.kill()
    primary.stop()
    assert "Bad checksum" in (tmp_path / "secondary.log").read_text(), \
        "the flipped bit went unnoticed"
    assert_zc_replica(pfs, sfs)
