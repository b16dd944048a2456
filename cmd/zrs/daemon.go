package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/internal/netaddr"
)

// shutdownTimeout bounds a daemon's whole graceful stop after
// SIGINT/SIGTERM, under one deadline: ZEO transactions in progress
// finishing, connected secondaries receiving what was committed, the
// storage closing. It stays well under the unit's TimeoutStopSec=90s.
// A variable only so that in-process tests can shorten it.
var shutdownTimeout = 60 * time.Second

// daemonFlags are the flags shared by "zrs primary" and "zrs secondary".
type daemonFlags struct {
	zeo               zeoFlags
	blobDir, logLevel string
	admin             string // --admin / --metrics ADDR, "" for none
	replicateTo       string // --replicate-to, set by the command before check
}

func (d *daemonFlags) register(fset *flag.FlagSet) {
	d.zeo.register(fset)
	fset.StringVar(&d.blobDir, "blob-dir", "", "blob directory `DIR` (not yet available)")
	fset.StringVar(&d.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	fset.StringVar(&d.admin, "admin", "", "serve the admin endpoint (/status, /metrics, /promote) over HTTP on `ADDR`")
	fset.StringVar(&d.admin, "metrics", "", "same as --admin `ADDR`")
}

// flagsSet returns the names of the flags given on the command line.
func flagsSet(fset *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// check refuses the options this release does not implement yet and
// returns the logger the daemon writes to stderr.
// fset is the parsed flag set: which flags were given, not only their
// values, decides some of the refusals.
func (d *daemonFlags) check(cmd string, fset *flag.FlagSet, stderr io.Writer) (*slog.Logger, error) {
	set := flagsSet(fset)
	if err := d.zeo.check(cmd, set); err != nil {
		return nil, err
	}
	if set["admin"] && set["metrics"] {
		return nil, usagef("%s: --admin and --metrics name the same endpoint: give one", cmd)
	}
	if d.blobDir != "" {
		return nil, usagef("%s: --blob-dir is not yet available in this release (blobs are not replicated yet)", cmd)
	}
	if d.admin != "" {
		if _, err := netaddr.Parse(d.admin); err != nil {
			return nil, usagef("%s: --admin: %v", cmd, err)
		}
	}
	if err := distinctListens(cmd, [][2]string{{"zeo", d.zeo.addr}, {"replicate-to", d.replicateTo}, {"admin", d.admin}}); err != nil {
		return nil, err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(d.logLevel))); err != nil {
		return nil, usagef("%s: --log-level %q: want debug, info, warn or error", cmd, d.logLevel)
	}
	return newDaemonLogger(stderr, lvl), nil
}

// distinctListens refuses two flags that would listen on the same
// endpoint, before anything is opened (bind would blame "another
// process" for this one's own socket).
func distinctListens(cmd string, flags [][2]string) error {
	addrs := make([]string, len(flags))
	for i, f := range flags {
		addrs[i] = f[1]
	}
	if pairs := netaddr.SameListenPairs(addrs); len(pairs) > 0 {
		a, b := flags[pairs[0][0]], flags[pairs[0][1]]
		return usagef("%s: --%s %s and --%s %s listen on the same address: give each its own", cmd, a[0], a[1], b[0], b[1])
	}
	return nil
}

// checkAddr validates an ADDR flag value as a usage error.
func checkAddr(cmd, flagName, v string) error {
	if v == "" {
		return usagef("%s: --%s ADDR is required", cmd, flagName)
	}
	if _, err := netaddr.Parse(v); err != nil {
		return usagef("%s: --%s: %v", cmd, flagName, err)
	}
	return nil
}

// hangupStops returns ctx ended also by SIGHUP: a foreground daemon whose
// terminal goes away stops cleanly, as on SIGTERM, instead of being
// killed before its index is saved. (zrs run reloads on SIGHUP instead.)
//
// Once the stop has begun, by any of the signals, the next one takes its
// default action again and ends the process at once (as main arranges
// for SIGINT and SIGTERM).
func hangupStops(ctx context.Context) (context.Context, context.CancelFunc) {
	hctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	go func() {
		<-hctx.Done()
		signal.Reset(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	}()
	return hctx, stop
}

// stopContext is the context a daemon shuts down under once ctx (the
// signal context) has ended: not cancelled by it, bounded by
// shutdownTimeout. Make one per stop and pass it to every stage.
func stopContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
}

// usageFunc returns a flag usage printer with a header text.
func usageFunc(fset *flag.FlagSet, text string) func() {
	return func() {
		fmt.Fprint(fset.Output(), text)
		fset.PrintDefaults()
	}
}
