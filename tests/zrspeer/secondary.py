#!/usr/bin/env python3
"""A zc.zrs 3.1.0 Secondary replicating into a FileStorage, driven through stdin.

Usage: .venv-zrs/bin/python tests/zrspeer/secondary.py DATAFS ADDR
           [--reconnect-delay S] [--keep-alive-delay S] [--no-check-checksums]

ADDR: "host:port", "port" (on 127.0.0.1) or a Unix socket path (anything
containing "/"). It prints "ready" once the Secondary is constructed (it
connects, and reconnects, in the background). Then one command per stdin
line, one reply line each:

  lasttid     reply: lastTransaction() of the replica (hex)
  quit        close the Secondary (an open transaction is aborted); reply "bye"

Logs go to stderr (zc.zrs logs "Connected", "Disconnected", "Input data error").
"""

import argparse
import sys

import zc.zrs.secondary
from ZODB.FileStorage import FileStorage

from common import commands, parse_addr, reply, setup_logging


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datafs")
    p.add_argument("addr")
    # zc.zrs defaults to 60 s between reconnects; tests want it fast.
    p.add_argument("--reconnect-delay", type=float, default=0.1)
    p.add_argument("--keep-alive-delay", type=float, default=0)
    p.add_argument("--no-check-checksums", action="store_true")
    a = p.parse_args(argv)
    setup_logging("secondary")

    secondary = zc.zrs.secondary.Secondary(
        FileStorage(a.datafs), parse_addr(a.addr, "127.0.0.1"),
        reconnect_delay=a.reconnect_delay, keep_alive_delay=a.keep_alive_delay,
        check_checksums=not a.no_check_checksums)
    reply("ready")
    for cmd, _ in commands():
        if cmd == "lasttid":
            reply(secondary.lastTransaction().hex())
        elif cmd == "quit":
            break
        else:
            reply("error unknown command", cmd)
    secondary.close()
    reply("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
