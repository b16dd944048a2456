#!/usr/bin/env bash
# Side-by-side FileStorage benchmark: zrs (tests/fstool bench) against Python
# ZODB (bench/fs_py.py) on the same Python-generated databases.
#
#   bench/fs.sh        BENCH_OBJECTS (100000), BENCH_LOADS (100000),
#                      BENCH_COMMITS (2000), BENCH_PROFILES ("typical large"),
#                      BENCH_REPEAT (5)
#
# Every measurement is taken BENCH_REPEAT times, Go and Python
# alternating, and each side counts with its best run: on a shared or
# virtual machine single runs move by 10-30 %.
# Profiles (see bench/fs_py.py gen): "typical" = small objects added to an
# OOBTree, 1-20 per transaction; "large" = ~1.5 kB objects, 1000 per
# transaction. zrs iterates with one reused buffer, as its replication
# stream does; the same pass with memory of its own per transaction and the
# machine's read floor (the file read in 1 MiB preads) are printed beside.
# The commit table adds the disk's own floor (append + fsync, one at a
# time): no storage that fsyncs each commit can beat it.
#
# Needs .venv (tests/setup.sh). Prints tables; never fails on the numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OBJECTS=${BENCH_OBJECTS:-100000}
LOADS=${BENCH_LOADS:-100000}
COMMITS=${BENCH_COMMITS:-2000}
PROFILES=${BENCH_PROFILES:-typical large}
REPEAT=${BENCH_REPEAT:-5}
PY=.venv/bin/python
[[ -x $PY ]] || { echo "bench: $PY missing; run tests/setup.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zrs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/fstool" ./tests/fstool

run() { # side op args...
    local side=$1; shift
    echo "bench: $side $*" >&2
    if [[ $side == go ]]; then "$work/fstool" bench "$@"; else "$PY" bench/fs_py.py "$@"; fi
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Go $(go env GOVERSION), $("$PY" -c 'import sys, ZODB; print("Python", sys.version.split()[0])'), ZODB $("$PY" -c 'import importlib.metadata as m; print(m.version("ZODB"))')"
for profile in $PROFILES; do
    db=$work/$profile/Data.fs
    mkdir -p "$work/$profile"
    echo "bench: generating $OBJECTS objects ($profile) with Python ZODB..." >&2
    "$PY" bench/fs_py.py gen "$db" "$OBJECTS" "$profile" >&2
    # Both sides start from the data file and the index Python writes for it.
    rm -f "$db.index"
    "$PY" -c 'import sys; from ZODB.FileStorage import FileStorage; FileStorage(sys.argv[1]).close()' "$db"
    : >"$work/$profile-go.json"
    : >"$work/$profile-py.json"
    for _ in $(seq "$REPEAT"); do
        for side in go py; do
            { run "$side" iterate "$db"; run "$side" load "$db" "$LOADS"; } >>"$work/$profile-$side.json"
        done
        # zrs's iterator twice more: with memory of its own for every
        # transaction (a caller that keeps them), and the floor under any
        # iterator that copies the file out of the page cache (1 MiB
        # preads, nothing parsed).
        { run go iterate-own "$db"; run go read "$db"; } >>"$work/$profile-go.json"
    done
    echo
    echo "FileStorage, profile $profile: $(du -m "$db" | cut -f1) MB, $OBJECTS objects, $LOADS random loads, best of $REPEAT runs"
    "$PY" bench/fs_py.py table "$work/$profile-go.json" "$work/$profile-py.json"
done

mkdir -p "$work/go" "$work/py"
: >"$work/commit-go.json"
: >"$work/commit-py.json"
for _ in $(seq "$REPEAT"); do
    rm -f "$work"/go/* "$work"/py/*
    run go commit "$work/go/Data.fs" "$COMMITS" >>"$work/commit-go.json"
    run py commit "$work/py/Data.fs" "$COMMITS" >>"$work/commit-py.json"
    run go fsync "$work/go/fsync.probe" "$COMMITS" >>"$work/commit-go.json"
    # The same from 8 committers at once (threads in Python), as behind a
    # ZEO server: zrs shares fsyncs between them (group commit), Python's
    # FileStorage holds its commit lock through each fsync.
    rm -f "$work"/go/Data.fs* "$work"/py/Data.fs*
    run go commit "$work/go/Data.fs" "$COMMITS" 8 >>"$work/commit-go.json"
    run py commit "$work/py/Data.fs" "$COMMITS" 8 >>"$work/commit-py.json"
done
echo
echo "FileStorage commits: $COMMITS transactions of one small object, each fsynced; one committer, then 8 at once; best of $REPEAT runs"
"$PY" bench/fs_py.py table "$work/commit-go.json" "$work/commit-py.json"
