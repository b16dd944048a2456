#!/usr/bin/env python3
"""Print the JSON dump of a FileStorage, as Python's ZODB reads it.

Usage: pydump.py PATH

One JSON object per transaction per line; the same content that
`zrs fs dump --json PATH` must produce (see tests/pyfs/dump.py).
"""

import sys

from pyfs.dump import dump, to_line


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = sys.stdout
    for obj in dump(argv[1]):
        out.write(to_line(obj) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
