package main

import (
	"fmt"
	"io"
)

const usageText = `zrs — ZODB replication for FileStorage databases.

Usage:
  zrs <command> [flags] [args]

Available commands:
  fs verify [--progress] [--strict] PATH
        Check a Data.fs: everything ZODB's fstest checks (magic, headers,
        increasing tids, lengths and trailers, no unfinished 'c'
        transaction before the last, data records tiling each
        transaction), plus prev pointers and backpointer targets. Prints
        a summary with counts on success (an unfinished last transaction,
        a commit in progress, as a note; a problem with --strict); on
        damage prints the first problem with its byte offset and exits 1.
        Progress goes to stderr when it is a terminal or with --progress.
  fs dump [--json] PATH
        Print every transaction and data record of a Data.fs, in the line
        format of ZODB's fsdump.py, or with --json one JSON object per
        transaction per line (the format the interoperability tests use).
  primary PATH/Data.fs [--replicate-to ADDR] [--zeo ADDR] [--admin ADDR] [--durability async|sync ...]
        Serve a FileStorage's commits to secondaries (zrs3 to zrs
        secondaries, zc.zrs's zrs2 to Python ones; asynchronous, or with
        --durability sync acknowledged by --quorum of them) and, with
        --zeo, to ZEO clients (Python ZODB.DB(ClientStorage(ADDR))).
        ADDR: a port, host:port, or a unix socket path containing '/'.
        --admin (or --metrics) serves /status, /metrics (Prometheus) and
        /promote over HTTP. All flags: zrs primary --help.
  secondary PATH/Data.fs --replicate-from ADDR [--replicate-to ADDR] [--zeo ADDR] [--admin ADDR] [--protocol auto|zrs2|zrs3] ...
        Replicate a primary into a FileStorage, reconnecting after
        failures; with --replicate-to, relay to further secondaries; with
        --zeo, serve the replica read-only to ZEO clients. All flags
        (keep-alive, timeouts, compression): zrs secondary --help.
  status ADDR [--json]
        Role, last transaction and replication state (per-secondary lag)
        of the daemon whose --admin endpoint is ADDR.
  promote ADDR
        Turn the running secondary whose --admin endpoint is ADDR into a
        writable primary, without a restart.
  run --config FILE.yaml
        Run the primary or secondary a config file describes
        (/etc/zrs/NAME.yaml, rendered by zrs-recipe), as the systemd unit
        zrs@NAME.service does: serves the sockets systemd passes (named
        "zeo" and "replication"), reports READY/STATUS/STOPPING and
        watchdog pings to NOTIFY_SOCKET, stops gracefully on SIGTERM and
        re-reads the file on SIGHUP (log_level applies live).
  version
        Print the zrs version.

Not yet available (reserved):
  primary/secondary --blob-dir DIR (exit status 2), and blob_dir in a
  config file (a config error: exit status 1)

Exit status: 0 success, 1 failure, 2 usage error or unavailable command.
Run 'zrs <command> --help' for the flags of a command.
`

func printUsage(w io.Writer) { fmt.Fprint(w, usageText) }
