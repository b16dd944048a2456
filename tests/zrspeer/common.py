"""Shared bits of the zc.zrs peer scripts (run with .venv-zrs/bin/python).

These scripts drive the real zc.zrs 3.1.0, which needs ZODB < 5.6; they are
never imported by the main test venv.
"""

import logging
import sys


def parse_addr(text, default_host):
    """zc.zrs address from a command-line string.

    A string containing "/" is a Unix-domain socket path; "host:port" and a
    bare "port" (on default_host) are TCP. Port 0 asks the OS for a free port
    (primary only).
    """
    if "/" in text:
        return text
    host, sep, port = text.rpartition(":")
    if not sep:
        host = default_host
    return (host, int(port))


def format_addr(addr):
    return addr if isinstance(addr, str) else "%s:%d" % addr


def setup_logging(name):
    """zc.zrs and ZODB log to stderr, so a failing test can show why."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s " + name + " %(levelname)s %(name)s: %(message)s")


def reply(*words):
    print(*words, flush=True)


def commands():
    """Yield (command, args) for each non-empty stdin line; EOF means quit."""
    for line in sys.stdin:
        words = line.split()
        if words:
            yield words[0], words[1:]
    yield "quit", []
