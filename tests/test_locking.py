"""zrs and Python exclude each other through Data.fs.lock (zc.lockfile's flock)."""

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
import zc.lockfile
from ZODB.FileStorage import FileStorage

from conftest import copy_fs

TESTS = Path(__file__).resolve().parent
WAIT = 60  # seconds for a holder to report that it holds the lock


class Holder:
    """A child process that holds the lock until its stdin is closed."""

    def __init__(self, argv, cwd=None):
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT)
        line = self.proc.stdout.readline() if ready else ""
        if line != "locked\n":
            self.release()
            pytest.fail(f"{argv} did not report the lock: {line!r} {self.proc.stderr.read()}")

    def release(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rc


@pytest.fixture
def db(pydb, tmp_path):
    return copy_fs(pydb, tmp_path / "Data.fs", with_index=True)


def test_zrs_refuses_a_file_python_holds(db, run_fstool):
    holder = Holder([sys.executable, "-m", "pyfs.holdlock", str(db)], cwd=TESTS)
    try:
        proc = run_fstool("open", db, check=False)
        assert proc.returncode == 1, proc.stdout
        assert "locked" in proc.stderr.lower(), proc.stderr
    finally:
        assert holder.release() == 0
    run_fstool("open", db)  # released: the lock file left behind is not a lock


def test_python_refuses_a_file_zrs_holds(db, fstool_bin):
    holder = Holder([str(fstool_bin), "hold-lock", str(db)])
    try:
        with pytest.raises(zc.lockfile.LockError):
            FileStorage(str(db))
        # A read-only open takes no lock, in Python as in ZODB's design.
        FileStorage(str(db), read_only=True).close()
    finally:
        assert holder.release() == 0
    FileStorage(str(db)).close()


def test_zrs_refuses_a_file_zrs_holds(db, fstool_bin, run_fstool):
    holder = Holder([str(fstool_bin), "hold-lock", str(db)])
    try:
        proc = run_fstool("open", db, check=False)
        assert proc.returncode == 1
        assert "locked" in proc.stderr.lower(), proc.stderr
    finally:
        assert holder.release() == 0


def test_lock_file_names_the_holder_like_zc_lockfile(db, fstool_bin):
    """zc.lockfile writes " <pid>\\n"; tools that read it (and humans) expect the same."""
    holder = Holder([str(fstool_bin), "hold-lock", str(db)])
    try:
        content = Path(f"{db}.lock").read_text()
        assert content == f" {holder.proc.pid}\n", repr(content)
    finally:
        assert holder.release() == 0
    assert os.path.exists(f"{db}.lock"), "the lock file is left in place, as zc.lockfile does"
