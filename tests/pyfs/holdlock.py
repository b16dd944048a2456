"""Hold a FileStorage open read-write (hence locked) until stdin reaches EOF.

Usage: python -m pyfs.holdlock PATH     prints "locked" once the lock is held.
"""

import sys

from ZODB.FileStorage import FileStorage


def main(path):
    st = FileStorage(path)
    try:
        sys.stdout.write("locked\n")
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        st.close()


if __name__ == "__main__":
    main(sys.argv[1])
