#!/usr/bin/env bash
# Side-by-side replication benchmark: zrs (tests/replbench, bin/zrs) against
# zc.zrs 3.1.0 (bench/repl_py.py in .venv-zrs), over loopback TCP.
#
#   bench/repl.sh      REPL_MB (1024)          size of the catch-up database, MB
#                      REPL_RECORDS (200)      records per transaction in it
#                      REPL_PY (1)             0 skips the zc.zrs runs
#                      REPL_LAG_RATE (500)     commits/s for the lag run
#                      REPL_LAG_SECONDS (10)
#                      REPL_BIG_GB (10)        size of the sparse resume file
#                      REPL_RESUME_TRIALS (20), REPL_RESUME3_TRIALS (20)
#                      REPL_RSS_SECONDARIES (10), REPL_RSS_LIMIT (20s)
#
# zrs runs twice where it matters: over zrs2 (zc.zrs's protocol, md5-chained)
# and over zrs3 (native: zstd, identity and position checks).
#
# Quick run: REPL_MB=100 REPL_BIG_GB=1 REPL_LAG_SECONDS=2 REPL_RSS_SECONDARIES=3 REPL_PY=0 bench/repl.sh
#
# The catch-up database is written through the Go API: records of 200 B to
# 4 kB (log-uniform, each starting with a real class pickle), a fifth of
# them updates, REPL_RECORDS per transaction. Every side reads it from the
# page cache and fsyncs each transaction it applies. Prints a table; never
# fails on the numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MB=${REPL_MB:-1024}
RECORDS=${REPL_RECORDS:-200}
RUN_PY=${REPL_PY:-1}
LAG_RATE=${REPL_LAG_RATE:-500}
LAG_SECONDS=${REPL_LAG_SECONDS:-10}
BIG_GB=${REPL_BIG_GB:-10}
TRIALS=${REPL_RESUME_TRIALS:-20}
TRIALS3=${REPL_RESUME3_TRIALS:-20}
RSS_N=${REPL_RSS_SECONDARIES:-10}
RSS_LIMIT=${REPL_RSS_LIMIT:-20s}
PY=.venv-zrs/bin/python
if [[ $RUN_PY == 1 && ! -x $PY ]]; then
    echo "bench: $PY missing; run tests/setup.sh (or REPL_PY=0)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/zrs-repl-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/replbench" ./tests/replbench
go build -o "$work/zrs" ./cmd/zrs
rb=$work/replbench
results=$work/results.jsonl
: >"$results"

freeport() { "${PY:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# zc_primary SOURCE: start a zc.zrs primary on SOURCE; sets zc_addr, zc_in.
zc_primary() {
    zc_addr=127.0.0.1:$(freeport)
    mkfifo "$work/zc.in"
    "$PY" bench/repl_py.py primary "$1" "$zc_addr" <"$work/zc.in" >"$work/zc.out" 2>>"$work/zc-primary.log" &
    pids+=($!)
    exec {zc_in}>"$work/zc.in"
    for _ in $(seq 600); do grep -q ready "$work/zc.out" 2>/dev/null && return; sleep 0.1; done
    echo "bench: zc.zrs primary did not start; see its log:" >&2; tail "$work/zc-primary.log" >&2; exit 1
}
zc_primary_stop() { exec {zc_in}>&-; wait "${pids[-1]}" || true; rm -f "$work/zc.in"; }

fresh() { rm -rf "$work/dst"; mkdir "$work/dst"; echo "$work/dst/Data.fs"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, Go $(go env GOVERSION)$([[ $RUN_PY == 1 ]] && echo ", $("$PY" -c 'import sys, importlib.metadata as m; print("Python", sys.version.split()[0] + ", zc.zrs", m.version("zc.zrs") + ", ZODB", m.version("ZODB"))')")"

src=$work/src/Data.fs
mkdir -p "$work/src"
echo "bench: generating ${MB} MB ($RECORDS records per transaction) with the Go API..." >&2
"$rb" gen "$src" --mb "$MB" --records "$RECORDS" | tee "$work/gen.json" >&2

for proto in zrs2 zrs3; do
    echo "bench: catch-up zrs → zrs over $proto" >&2
    "$rb" catchup "$src" --proto "$proto" >>"$results" || echo "bench: catch-up over $proto failed (see above)" >&2
done
if [[ $RUN_PY == 1 ]]; then
    zc_primary "$src"
    echo "bench: catch-up zc.zrs → zc.zrs" >&2
    "$PY" bench/repl_py.py secondary "$(fresh)" "$zc_addr" "zc.zrs → zc.zrs" --source "$src" 2>>"$work/zc-secondary.log" >>"$results"
    echo "bench: catch-up zc.zrs → zrs" >&2
    "$rb" catchup "$src" --primary "$zc_addr" --label "zc.zrs → zrs" >>"$results"
    zc_primary_stop

    echo "bench: catch-up zrs → zc.zrs" >&2
    addr=127.0.0.1:$(freeport)
    "$work/zrs" primary "$src" --replicate-to "$addr" 2>>"$work/zrs-primary.log" &
    pids+=($!)
    "$PY" bench/repl_py.py secondary "$(fresh)" "$addr" "zrs → zc.zrs" --source "$src" 2>>"$work/zc-secondary.log" >>"$results"
    kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
fi
rm -rf "$work/dst"

for proto in zrs2 zrs3; do
    echo "bench: lag at $LAG_RATE commits/s for $LAG_SECONDS s over $proto" >&2
    "$rb" lag --rate "$LAG_RATE" --seconds "$LAG_SECONDS" --dir "$work" --proto "$proto" >>"$results" ||
        echo "bench: lag over $proto failed (see above)" >&2
done

echo "bench: resume at the end of a sparse $BIG_GB GiB file" >&2
"$rb" bigfile "$work/big.fs" "$work/bigsec.fs" --gb "$BIG_GB" >&2
"$rb" resume "$work/big.fs" "$work/bigsec.fs" --trials "$TRIALS" --proto zrs2 >>"$results"
if ((TRIALS3 > 0)); then
    "$rb" bigfile "$work/big.fs" "$work/bigsec.fs" --gb "$BIG_GB" >&2
    "$rb" resume "$work/big.fs" "$work/bigsec.fs" --trials "$TRIALS3" --proto zrs3 >>"$results" ||
        echo "bench: resume over zrs3 failed (see above)" >&2
fi
rm -f "$work"/big*

for proto in zrs2 zrs3; do
    echo "bench: primary RSS with $RSS_N secondaries catching up at once over $proto (at most $RSS_LIMIT)" >&2
    "$rb" rss "$src" --zrs "$work/zrs" --secondaries "$RSS_N" --limit "$RSS_LIMIT" --proto "$proto" 2>>"$work/zrs-primary.log" >>"$results" ||
        echo "bench: rss over $proto failed (see $work/zrs-primary.log)" >&2
done

echo
echo "Replication: $(du -m "$src" | cut -f1) MB database, $RECORDS records per transaction, loopback TCP"
"${PY:-python3}" bench/repl_py.py table "$results"
[[ -n ${REPL_KEEP:-} ]] && cp "$results" "$REPL_KEEP"
exit 0
