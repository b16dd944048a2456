#!/usr/bin/env python3
"""Write a FileStorage with Python's ZODB (see tests/pyfs/gen.py for what is in it).

Usage: gen_pydb.py PATH [--txns N] [--seed S] [--pack]

PATH must not exist. Same arguments, same bytes. Prints a JSON summary line.
"""

import argparse
import json
import os
import sys

from pyfs.gen import generate


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a FileStorage with Python's ZODB.")
    p.add_argument("path")
    p.add_argument("--txns", type=int, default=600, help="at least this many transactions")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pack", action="store_true", help="pack at the middle transaction")
    args = p.parse_args(argv)
    if os.path.exists(args.path):
        p.error(f"{args.path} exists")
    print(json.dumps(generate(args.path, args.txns, args.seed, args.pack)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
