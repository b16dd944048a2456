package main

import (
	"context"
	"errors"
	"flag"
	"github.com/zrs-replication/zrs/core/primary"

	"github.com/zrs-replication/zrs/internal/config"
)

const primaryUsage = `Usage: zrs primary PATH/Data.fs [--replicate-to ADDR] [--zeo ADDR] [--admin ADDR] [--blob-dir DIR]

Open the FileStorage at PATH (creating it if missing) and stream every
committed transaction to the secondaries that connect to ADDR: zrs3 to
zrs secondaries, the zc.zrs protocol (zrs2.0/zrs2.1) to Python zc.zrs
ones. ADDR is a port, host:port, or a unix socket path containing '/'; a
bare port (8100) listens on every interface (give 127.0.0.1:8100 to stay
on this host). At least one of --replicate-to and --zeo is needed.

With --zeo ADDR, serve the storage (name "1", or --zeo-storage NAME as
in a runzeo config's <filestorage NAME>) to ZEO 5/6 clients: unmodified
Python applications open ZODB.DB(ClientStorage(ADDR)) and read and write
through this primary; every commit also streams to the secondaries. Write conflicts are resolved by the clients (BTrees,
Length and application classes live there). --zeo-cert/--zeo-key serve
TLS; --zeo-authenticate also requires client certificates.

With --admin ADDR (or --metrics ADDR), serve HTTP on ADDR: GET /status
(what "zrs status" shows), GET /metrics (Prometheus), POST /promote.

Secondaries that speak zrs3 (zrs secondaries) get a stream with
heartbeats, zstd-compressed unless they are on this host (unix socket,
loopback), and are refused if their file is another database or has
transactions this primary lacks.

Replication is asynchronous by default: commits never wait for
secondaries. With --durability sync, each commit also waits until
--quorum zrs3 secondaries have it on disk; after --sync-timeout the
commit fails (it is committed here, not confirmed elsewhere) or, with
--on-sync-timeout degrade, replication turns asynchronous with an error
in the log until the secondaries catch up. On
SIGINT or SIGTERM the primary stops accepting, lets ZEO transactions in
progress finish (idle clients are disconnected at once) and connected
secondaries receive what was committed (60 s in all, then it aborts what
is left), saves the index and exits 0.
Logs go to stderr.

Flags:
`

// runPrimary runs "zrs primary".
func runPrimary(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("primary", flag.ContinueOnError)
	to := fset.String("replicate-to", "", "listen for secondaries on `ADDR`")
	var df daemonFlags
	df.register(fset)
	var durf durabilityFlags
	durf.register(fset)
	fset.Usage = usageFunc(fset, primaryUsage)
	path, err := onePath(fset, args, e)
	if err != nil {
		return err
	}
	if *to != "" || df.zeo.addr == "" {
		if err := checkAddr("primary", "replicate-to", *to); err != nil {
			if *to == "" {
				return usagef("primary: --replicate-to ADDR or --zeo ADDR is required")
			}
			return err
		}
	}
	dur, err := durf.check()
	if err != nil {
		return err
	}
	if dur.Mode == primary.Sync && *to == "" {
		return usagef("primary: --durability sync needs --replicate-to ADDR: every commit would wait for secondaries that cannot connect, then fail")
	}
	df.replicateTo = *to
	log, err := df.check("primary", fset, e.stderr)
	if err != nil {
		return err
	}
	ctx, stop := hangupStops(ctx)
	defer stop()
	n, err := startNode(ctx, nodeOptions{
		role: config.Primary, path: path, replicateTo: *to,
		zeo: df.zeo, admin: df.admin, durability: dur, log: log,
	})
	if errors.Is(err, errStoppedWhileStarting) {
		return nil
	}
	if err != nil {
		return err
	}
	return n.run(ctx)
}
