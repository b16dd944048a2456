#!/usr/bin/env bash
# Replication benchmarks, zrs vs zc.zrs: filled in by the next commit.
echo "bench/repl.sh: replication benchmarks not written yet" >&2
