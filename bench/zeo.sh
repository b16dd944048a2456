#!/usr/bin/env bash
# Side-by-side ZEO server benchmark: `zrs primary --zeo` against Python's
# runzeo over FileStorage (ZEO 6.2, ZODB 6.4, from .venv), same machine, same
# workload, loopback TCP, driven first by real ZEO ClientStorage processes
# (bench/zeo_py.py), then by light Go clients (tests/zeoload).
#
#   bench/zeo.sh     ZEO_BENCH_PROCS ("1 4 8")      concurrent client processes
#                    ZEO_BENCH_SECONDS (10)         duration of each measurement
#                    ZEO_BENCH_OBJECTS (20000)      objects loaded at random
#                    ZEO_BENCH_CODEC (pickle)       or msgpack
#                    ZEO_BENCH_SIDES ("zrs python") which servers to run
#                    ZEO_BENCH_PARTS ("python go")  which clients: ClientStorage
#                                                   processes, light Go clients
#                    ZEO_BENCH_GO_CLIENTS ("1 4 8 16")  Go clients' connections
#                    ZEO_BENCH_GO_PACED ("commit:8:100 load:8:1000")
#                                                   OP:CLIENTS:RATE runs at a fixed
#                                                   offered load (RATE/s per client)
#
# Measured for each number of client processes:
#   - commits/s: each process commits a small change to its own object
#     (no conflicts) as fast as it can; every commit is fsynced by the server;
#   - loadBefore round trip p50/p99: each process calls loadBefore(random oid,
#     maxtid) on its ClientStorage's server stub, so every call reaches the
#     server (no client-cache hits), on a database of ZEO_BENCH_OBJECTS objects;
#   - the server process's CPU time per commit and per loadBefore: on a small
#     machine the Python clients use up the cores before either server does.
# Both servers get a fresh Data.fs populated the same way. Prints a table
# with the ratio zrs / Python; never fails on the numbers.
#
# The Python clients use ~2 ms of CPU per commit on the server's cores, so
# the first table measures them as much as the servers. The second part
# drives each server (restarted on a fresh Data.fs) with tests/zeoload, a
# Go program speaking the ZEO 5 client protocol that costs a few per cent
# of that: commits/s with each connection committing a 200-byte revision
# of its own object, loadBefore round trips on 1000 objects it commits
# first; p50/p99 latency, server CPU per operation (from /proc) and the Go
# client's own CPU per operation. Its table, "light Go clients", gives
# ratios as plain numbers: zrs/Python for ops/s, Python/zrs for p99.
#
# Quick run: ZEO_BENCH_SECONDS=1 ZEO_BENCH_OBJECTS=500 ZEO_BENCH_PROCS="1 2" bench/zeo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROCS=${ZEO_BENCH_PROCS:-1 4 8}
SECONDS_EACH=${ZEO_BENCH_SECONDS:-10}
OBJECTS=${ZEO_BENCH_OBJECTS:-20000}
CODEC=${ZEO_BENCH_CODEC:-pickle}
SIDES=${ZEO_BENCH_SIDES:-zrs python}
PARTS=${ZEO_BENCH_PARTS:-python go}
GO_CLIENTS=${ZEO_BENCH_GO_CLIENTS:-1 4 8 16}
GO_PACED=${ZEO_BENCH_GO_PACED:-commit:8:100 load:8:1000}
PY=.venv/bin/python
[[ -x $PY ]] || { echo "bench: $PY missing; run tests/setup.sh" >&2; exit 1; }
[[ $CODEC == pickle || $CODEC == msgpack ]] || { echo "bench: ZEO_BENCH_CODEC=$CODEC: pickle or msgpack" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zrs-zeo-bench.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
results=$work/results.jsonl
goresults=$work/go-results.jsonl
: >"$results"
: >"$goresults"
for part in $PARTS; do
    [[ $part == python || $part == go ]] || { echo "bench: ZEO_BENCH_PARTS=$PARTS: python and/or go" >&2; exit 1; }
done

freeport() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server SIDE [NAME]: start it on a fresh Data.fs in $work/NAME (NAME
# defaults to SIDE); sets addr and server_pid.
start_server() {
    local side=$1 name=${2:-$1}
    local dir=$work/$name log=$work/$name.log
    mkdir -p "$dir"
    if [[ $side == zrs ]]; then
        local flags=()
        [[ $CODEC == msgpack ]] && flags+=(--zeo-msgpack)
        "$work/bin/zrs" primary "$dir/Data.fs" --zeo 127.0.0.1:0 "${flags[@]}" 2>"$log" &
        server_pid=$!
        addr=
        for _ in $(seq 300); do
            addr=$(sed -n 's/.*msg="serving ZEO".* addr=\([^ ]*\).*/\1/p' "$log" | head -n1)
            [[ -n $addr ]] && break
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
    else
        addr=127.0.0.1:$(freeport)
        if [[ $CODEC == msgpack ]]; then export ZEO_MSGPACK=1; else unset ZEO_MSGPACK; fi
        "$PY" -m ZEO.runzeo -a "$addr" -f "$dir/Data.fs" 2>"$log" &
        server_pid=$!
        for _ in $(seq 300); do
            "$PY" -c 'import socket, sys; h, p = sys.argv[1].rsplit(":", 1); socket.create_connection((h, int(p)), 1).close()' "$addr" 2>/dev/null && break
            kill -0 "$server_pid" 2>/dev/null || { addr=; break; }
            sleep 0.1
        done
        unset ZEO_MSGPACK
    fi
    if [[ -z $addr ]]; then
        echo "bench: the $side server did not start; its log:" >&2; tail -n 20 "$log" >&2; exit 1
    fi
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || { echo "bench: the $1 server exited with $? on SIGTERM; its log:" >&2; tail -n 20 "$work/$1.log" >&2; exit 1; }
    server_pid=
}

[[ " $SIDES " == *" zrs "* ]] && go build -o "$work/bin/zrs" ./cmd/zrs
[[ " $PARTS " == *" go "* ]] && go build -o "$work/bin/zeoload" ./tests/zeoload
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Go $(go env GOVERSION), $("$PY" -c 'import sys, importlib.metadata as m; print("Python", sys.version.split()[0] + ", ZEO", m.version("ZEO") + ", ZODB", m.version("ZODB"))'), codec $CODEC"

if [[ " $PARTS " == *" python "* ]]; then
    for side in $SIDES; do
        start_server "$side"
        echo "bench: $side serving on $addr; populating $OBJECTS objects" >&2
        "$PY" bench/zeo_py.py populate "$addr" "$OBJECTS" "$work/$side.oids" >&2
        export ZEO_BENCH_SERVER_PID=$server_pid
        for n in $PROCS; do
            echo "bench: $side, $n client processes: commits for ${SECONDS_EACH}s, then loads" >&2
            "$PY" bench/zeo_py.py commit "$addr" "$n" "$SECONDS_EACH" "$side" >>"$results"
            "$PY" bench/zeo_py.py load "$addr" "$n" "$SECONDS_EACH" "$side" "$work/$side.oids" >>"$results"
        done
        unset ZEO_BENCH_SERVER_PID
        stop_server "$side"
    done

    echo
    echo "ZEO server: zrs primary --zeo vs Python runzeo (FileStorage), $OBJECTS objects, ${SECONDS_EACH}s per measurement, loopback TCP, $CODEC"
    "$PY" bench/zeo_py.py table "$results"
    [[ -n ${ZEO_BENCH_KEEP:-} ]] && cp "$results" "$ZEO_BENCH_KEEP"
fi

if [[ " $PARTS " == *" go "* ]]; then
    for side in $SIDES; do
        start_server "$side" "$side-go"
        for n in $GO_CLIENTS; do
            echo "bench: $side, $n Go clients: commits for ${SECONDS_EACH}s, then loads" >&2
            for op in commit load; do
                "$work/bin/zeoload" "$op" "$addr" -clients "$n" -seconds "$SECONDS_EACH" \
                    -server-pid "$server_pid" -label "$side" >>"$goresults"
            done
        done
        for spec in $GO_PACED; do
            IFS=: read -r op n rate <<<"$spec"
            echo "bench: $side, $n Go clients, $op paced at $rate/s each, for ${SECONDS_EACH}s" >&2
            "$work/bin/zeoload" "$op" "$addr" -clients "$n" -rate "$rate" -seconds "$SECONDS_EACH" \
                -server-pid "$server_pid" -label "$side" >>"$goresults"
        done
        stop_server "$side-go"
    done
    echo
    echo "light Go clients: zrs vs runzeo (tests/zeoload; FileStorage, 1000 objects loaded, ${SECONDS_EACH}s per measurement, loopback TCP, $CODEC)"
    "$work/bin/zeoload" table "$goresults"
    [[ -n ${ZEO_BENCH_KEEP_GO:-} ]] && cp "$goresults" "$ZEO_BENCH_KEEP_GO"
fi
exit 0
