"""Drive the zc.zrs peer scripts from the main test venv (no zc.zrs import here).

    primary = start_primary(tmp_path / "p.fs", "127.0.0.1:0", tmp_path / "p.log")
    secondary = start_secondary(tmp_path / "s.fs", primary.addr, tmp_path / "s.log")
    tid = primary.ask("commit 10")
    wait_caught_up(secondary, tid)
    secondary.quit(); primary.quit()
    assert_replica(tmp_path / "p.fs", tmp_path / "s.fs")

Every failure is a pytest failure that quotes the peer's log tail.
"""

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyfs.dump import parse_lines

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
ZRS_PYTHON = REPO / ".venv-zrs" / "bin" / "python"
PYDUMP = TESTS / "pydump.py"
REPLY_TIMEOUT = 60  # seconds for one command (commit N writes N transactions)
CATCH_UP_TIMEOUT = 30


class Peer:
    """One peer script as a subprocess: a command per stdin line, a reply per stdout line."""

    def __init__(self, name, argv, log_path):
        if not ZRS_PYTHON.exists():
            pytest.fail(f"{ZRS_PYTHON} missing: run tests/setup.sh", pytrace=False)
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(ZRS_PYTHON)] + [str(a) for a in argv], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, encoding="utf-8", bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError as e:
            return f"<no log: {e}>"

    def fail(self, msg):
        pytest.fail(f"{self.name}: {msg}\n--- {self.log_path} (tail) ---\n{self.log_tail()}",
                    pytrace=False)

    def read_line(self, timeout=REPLY_TIMEOUT):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.fail(f"no reply within {timeout}s")
        if line is None:
            self.fail(f"exited (code {self.proc.wait()}) instead of replying")
        if line.startswith("error"):
            self.fail(f"replied {line!r}")
        return line

    def ask(self, command, timeout=REPLY_TIMEOUT):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except OSError as e:
            self.fail(f"cannot send {command!r}: {e}")
        return self.read_line(timeout)

    def quit(self, timeout=REPLY_TIMEOUT):
        """Close cleanly: "quit" must be answered "bye" and the process exit 0."""
        if self.proc.poll() is None:
            reply = self.ask("quit", timeout)
            if reply != "bye":
                self.fail(f"answered quit with {reply!r}")
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.fail(f"still running {timeout}s after quit")
        else:
            code = self.proc.returncode
        self._log.close()
        if code != 0:
            self.fail(f"exit code {code}")

    def kill(self):
        """Stop without a clean close (a crash, or the end of a failed test)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def start_primary(datafs, addr, log_path, seed=1):
    """A zc.zrs Primary on ADDR; .addr is the address it bound ("host:port" or path)."""
    p = Peer("zc.zrs primary", [HERE / "primary.py", datafs, addr, "--seed", seed], log_path)
    words = p.read_line().split()
    if len(words) != 2 or words[0] != "ready":
        p.fail(f"expected 'ready ADDR', got {' '.join(words)!r}")
    p.addr = words[1]
    return p


def start_secondary(datafs, addr, log_path, reconnect_delay=0.1, keep_alive_delay=0):
    """A zc.zrs Secondary replicating from ADDR; it (re)connects in the background."""
    p = Peer("zc.zrs secondary",
             [HERE / "secondary.py", datafs, addr, "--reconnect-delay", reconnect_delay,
              "--keep-alive-delay", keep_alive_delay], log_path)
    line = p.read_line()
    if line != "ready":
        p.fail(f"expected 'ready', got {line!r}")
    return p


def wait_caught_up(secondary, tid, timeout=CATCH_UP_TIMEOUT):
    """Poll the secondary's lastTransaction (hex) until it reaches tid (hex)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = secondary.ask("lasttid")
        if got == tid:
            return
        if got > tid:  # same-length lowercase hex: string order is tid order
            secondary.fail(f"lastTransaction {got} is past the primary's {tid}")
        time.sleep(0.05)
    secondary.fail(f"lastTransaction still {got} after {timeout}s, want {tid}")


def pydump(path):
    """The transactions of a FileStorage as dicts, as tests/pydump.py prints them."""
    proc = subprocess.run([sys.executable, str(PYDUMP), str(path)], capture_output=True,
                          text=True, timeout=REPLY_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"pydump {path} exited {proc.returncode}:\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return parse_lines(proc.stdout)


# A replica re-pickles the transaction extension (it travels as a dict), so its
# bytes, and hence the positions after it, may differ from the primary's
# legitimately. Everything else must be equal.
REPLICA_FREE_KEYS = ("pos", "extension_sha1")


def replica_view(txns):
    return [{k: v for k, v in t.items() if k not in REPLICA_FREE_KEYS} for t in txns]


def assert_replica(primary_fs, secondary_fs, max_reported=10):
    """The secondary holds the primary's transactions, one for one."""
    want, got = replica_view(pydump(primary_fs)), replica_view(pydump(secondary_fs))
    problems = []
    if len(want) != len(got):
        problems.append(f"{len(want)} transactions on the primary, {len(got)} on the secondary")
    for i, (a, b) in enumerate(zip(want, got)):
        if a == b:
            continue
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                problems.append(f"txn #{i} tid={a.get('tid')} {key}: primary={a.get(key)!r}"
                                f" secondary={b.get(key)!r}")
        if len(problems) >= max_reported:
            break
    assert not problems, "replica differs:\n  " + "\n  ".join(problems[:max_reported])
    return want
