package main

import (
	"context"
	"errors"
	"flag"

	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

const secondaryUsage = `Usage: zrs secondary PATH/Data.fs --replicate-from ADDR [--replicate-to ADDR] [--keep-alive DURATION] [--protocol auto|zrs2|zrs3] [--admin ADDR] [--zeo ADDR] [--blob-dir DIR]

Open the FileStorage at PATH (creating it if missing) and replicate into
it everything committed on the primary at ADDR (the native protocol zrs3,
acknowledged, and compressed unless the primary is on this host, with a
zrs primary; zrs2.0 with a Python zc.zrs primary, detected automatically,
but never after the primary has answered zrs3), resuming from the last transaction in
PATH and reconnecting after failures with a capped back-off. With
--replicate-to, also serve what it receives to further secondaries.

With --admin ADDR (or --metrics ADDR), serve HTTP on ADDR: GET /status,
GET /metrics (Prometheus), and POST /promote ("zrs promote ADDR"), which
stops replicating and makes this node a writable primary without a
restart; a relay keeps serving its own secondaries.

ADDR is a port, host:port, or a unix socket path containing '/'. A bare
port (8100) listens on every interface (--zeo, --replicate-to, --admin:
give 127.0.0.1:8100 to stay on this host) and connects to this host
(--replicate-from).

With --zeo ADDR, serve the replica read-only to ZEO 5/6 clients (open
them with ClientStorage(ADDR, read_only=True), or read_only_fallback=True
with the primary's address first): every replicated transaction is sent
to them as an invalidation, and writable registrations are refused with
ReadOnlyError until the secondary is promoted.

On SIGINT or SIGTERM the secondary aborts a transaction it
is receiving (it is received again next time), saves the index and exits 0.
Logs go to stderr.

Flags:
`

// runSecondary runs "zrs secondary".
func runSecondary(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("secondary", flag.ContinueOnError)
	from := fset.String("replicate-from", "", "replicate from the primary at `ADDR`")
	to := fset.String("replicate-to", "", "also serve further secondaries on `ADDR`")
	keepAlive := fset.Duration("keep-alive", 0, "send a keep-alive to the primary every `DURATION` (0: never)")
	var df daemonFlags
	df.register(fset)
	var pf protocolFlags
	pf.register(fset)
	fset.Usage = usageFunc(fset, secondaryUsage)
	path, err := onePath(fset, args, e)
	if err != nil {
		return err
	}
	if err := checkAddr("secondary", "replicate-from", *from); err != nil {
		return err
	}
	if *to != "" {
		if err := checkAddr("secondary", "replicate-to", *to); err != nil {
			return err
		}
		if netaddr.Same(*to, *from) {
			return usagef("secondary: --replicate-to and --replicate-from must differ")
		}
	}
	sopts := secondary.Options{KeepAlive: *keepAlive}
	if err := pf.apply(&sopts); err != nil {
		return err
	}
	if *keepAlive < 0 {
		return usagef("secondary: --keep-alive must not be negative")
	}
	df.replicateTo = *to
	log, err := df.check("secondary", fset, e.stderr)
	if err != nil {
		return err
	}
	ctx, stop := hangupStops(ctx)
	defer stop()
	n, err := startNode(ctx, nodeOptions{
		role: config.Secondary, path: path, replicateTo: *to, replicateFrom: *from,
		zeo: df.zeo, admin: df.admin, secondary: sopts, log: log,
	})
	if errors.Is(err, errStoppedWhileStarting) {
		return nil
	}
	if err != nil {
		return err
	}
	return n.run(ctx)
}

// closeWithin runs closeFn, giving up waiting when sctx (the stop's
// context) is done.
func closeWithin(sctx context.Context, closeFn func() error) error {
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	select {
	case err := <-done:
		return err
	case <-sctx.Done():
		return sctx.Err()
	}
}
