"""Shared fixtures for the Python peer tests.

The Go binaries under test (cmd/zrs and tests/fstool) are built once per
session into a temporary directory; a build failure fails every test that
needs them. Python databases are generated once per session and copied by
the tests that change them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyfs.gen import generate

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds for one Go command: a hang fails instead of blocking CI


def go_build(out_dir, pkg, name):
    """Build one Go main package; a failure is a test failure, with go's output."""
    out = Path(out_dir) / name
    proc = subprocess.run(
        ["go", "build", "-o", str(out), pkg], cwd=REPO, capture_output=True, text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        pytest.fail(f"go build {pkg} failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bin")


@pytest.fixture(scope="session")
def zrs_bin(bin_dir):
    return go_build(bin_dir, "./cmd/zrs", "zrs")


@pytest.fixture(scope="session")
def fstool_bin(bin_dir):
    return go_build(bin_dir, "./tests/fstool", "fstool")


def _runner(binary):
    def run(*args, check=True, input=None, timeout=TIMEOUT):
        argv = [str(binary)] + [str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stderr:\n{proc.stderr[-4000:]}\nstdout:\n{proc.stdout[-2000:]}",
                pytrace=False,
            )
        return proc

    run.binary = binary
    return run


@pytest.fixture(scope="session")
def run_zrs(zrs_bin):
    """run_zrs(*args, check=True) -> CompletedProcess of bin/zrs (text mode)."""
    return _runner(zrs_bin)


@pytest.fixture(scope="session")
def run_fstool(fstool_bin):
    """run_fstool(*args, check=True) -> CompletedProcess of tests/fstool (text mode)."""
    return _runner(fstool_bin)


def copy_fs(src, dst, with_index=False):
    """Copy a Data.fs (and optionally its .index) to dst; return dst as a Path."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if with_index:
        shutil.copyfile(f"{src}.index", f"{dst}.index")
    return dst


def _generated(tmp_path_factory, name, **kw):
    path = tmp_path_factory.mktemp(name) / "Data.fs"
    generate(path, **kw)
    return path


@pytest.fixture(scope="session")
def pydb(tmp_path_factory):
    """A Python-written database: 600 transactions, seed 1."""
    return _generated(tmp_path_factory, "pydb", txns=600, seed=1)


@pytest.fixture(scope="session")
def pydb_seed2(tmp_path_factory):
    return _generated(tmp_path_factory, "pydb2", txns=500, seed=2)


@pytest.fixture(scope="session")
def pydb_packed(tmp_path_factory):
    """Packed in the middle: status 'p' transactions, inlined data, prev = 0."""
    return _generated(tmp_path_factory, "pydbp", txns=500, seed=3, pack=True)


@pytest.fixture(scope="session")
def godb(tmp_path_factory, run_fstool):
    """A Go-written database (fstool write), closed, with its .index."""
    path = tmp_path_factory.mktemp("godb") / "Data.fs"
    run_fstool("write", path, "--txns", 300, "--seed", 7)
    return path


def pytest_report_header(config):
    return [f"python peer: {sys.executable}", f"repo: {REPO}",
            f"go: {shutil.which('go') or 'NOT FOUND'}", f"cwd: {os.getcwd()}"]
