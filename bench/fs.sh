#!/usr/bin/env bash
# Side-by-side FileStorage benchmark: zrs (tests/fstool bench) against Python
# ZODB (bench/fs_py.py) on the same Python-generated database.
#
#   bench/fs.sh            BENCH_OBJECTS (100000), BENCH_LOADS (100000),
#                          BENCH_COMMITS (2000) override the sizes
#
# Needs .venv (tests/setup.sh). Prints a table; never fails on the numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OBJECTS=${BENCH_OBJECTS:-100000}
LOADS=${BENCH_LOADS:-100000}
COMMITS=${BENCH_COMMITS:-2000}
PY=.venv/bin/python
[[ -x $PY ]] || { echo "bench: $PY missing; run tests/setup.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zrs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/fstool" ./tests/fstool
db=$work/db/Data.fs
mkdir -p "$work/db" "$work/go" "$work/py"

echo "bench: generating $OBJECTS objects with Python ZODB..." >&2
"$PY" bench/fs_py.py gen "$db" "$OBJECTS" >&2
rm -f "$db.index"  # each side builds or loads its own; start both from the data file only
"$PY" -c 'import sys; from ZODB.FileStorage import FileStorage; FileStorage(sys.argv[1]).close()' "$db"

run() { # side op args...
    local side=$1; shift
    echo "bench: $side $*" >&2
    if [[ $side == go ]]; then "$work/fstool" bench "$@"; else "$PY" bench/fs_py.py "$@"; fi
}
for side in go py; do
    {
        run "$side" iterate "$db"
        run "$side" load "$db" "$LOADS"
        run "$side" commit "$work/$side/Data.fs" "$COMMITS"
    } >"$work/$side.json"
done

echo
echo "FileStorage, $(du -m "$db" | cut -f1) MB, $OBJECTS objects, $LOADS loads, $COMMITS fsynced commits"
"$PY" bench/fs_py.py table "$work/go.json" "$work/py.json"
