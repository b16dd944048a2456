package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/internal/config"
)

const runUsage = `Usage: zrs run --config FILE.yaml

Run the primary or secondary described by a config file (what zrs-recipe
renders to /etc/zrs/NAME.yaml; the keys mean what the flags of "zrs
primary" and "zrs secondary" mean). An unknown key or a bad value fails
with the file, line and key: "main.yaml:7: zeo.adress: unknown field".

Under systemd (Type=notify, the zrs@.service template):
  - Sockets passed by socket units are served instead of listening: the
    one named "zeo" (FileDescriptorName=zeo) serves ZEO, the one named
    "replication" serves secondaries; others are matched to zeo.address
    and replication.listen by the address they are bound to. A passed
    socket that matches nothing is an error. Without passed sockets, zrs
    listens on the configured addresses itself.
  - READY=1 is sent once serving, then STATUS= lines (role, last tid,
    secondaries and their lag, upstream state, ZEO clients) as they
    change; WATCHDOG=1 at half of WatchdogSec when it is set.
  - SIGTERM (or SIGINT) sends STOPPING=1, stops accepting, lets ZEO
    transactions in progress finish (idle clients are disconnected at
    once) and secondaries receive what was committed, 60 s in all (then
    what is left is aborted), saves the index and exits 0.
  - SIGHUP re-reads the file: log_level applies at once; other changes
    are logged as needing a restart.

Logs go to stderr (the journal under systemd).

Flags:
`

// runRun runs "zrs run --config FILE".
func runRun(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fset.String("config", "", "the daemon config `FILE` (YAML)")
	fset.Usage = usageFunc(fset, runUsage)
	if err := parseFlags(fset, args, e); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		return usagef("run: unexpected arguments %q: the config file is given with --config", fset.Args())
	}
	if *file == "" {
		return usagef("run: --config FILE is required")
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.LogLevel))
	log := newDaemonLogger(e.stderr, level).With("instance", cfg.Name)
	logWarnings(log, cfg)
	// SIGHUP is caught from here on (its default would kill the daemon).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o, err := nodeOptionsFrom(cfg, log)
	if err != nil {
		return err
	}
	if o.zeoLns, o.replicationLns, err = inheritedListeners(cfg, log); err != nil {
		return err
	}
	notify := newNotifier(log)
	opened := extendStartWhileOpening(ctx, notify, cfg.Name)
	n, err := startNode(ctx, o)
	opened()
	if errors.Is(err, errStoppedWhileStarting) {
		// A Type=notify service that exits before READY=1 has failed
		// (result "protocol", restarted) unless systemd was stopping it:
		// say ready, then stopping, as for a stop right after the start
		// (two messages: in one, the last of the two would win).
		notify.send(sd.SdNotifyReady)
		notify.send(sd.SdNotifyStopping + "\nSTATUS=" + cfg.Name + ": stopped while the storage was opening: not serving")
		return nil
	}
	if err != nil {
		return err
	}
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	sup := &supervisor{name: cfg.Name, node: n, notify: notify, log: log}
	done := make(chan struct{})
	defer close(done)
	go sup.run(ctx, done, stopNode)
	go watchReload(ctx, hup, *file, cfg, level, log)
	return n.run(nodeCtx)
}

// nodeOptionsFrom turns a validated config into the node's options, with
// the defaults of the flag commands for what the file cannot say.
func nodeOptionsFrom(c *config.Config, log *slog.Logger) (nodeOptions, error) {
	o := nodeOptions{
		role: c.Role, path: c.Path, admin: c.Admin, log: log,
		replicateTo: c.ReplicationListen(), replicateFrom: c.ReplicationFrom(),
	}
	if z := c.ZEO; z != nil {
		o.zeo = zeoFlags{addr: z.Address, storage: z.Storage, msgpack: z.Msgpack, maxTxnMB: z.MaxTransactionMB, txnTimeout: z.TransactionTimeout}
		if o.zeo.storage == "" {
			o.zeo.storage = zeo.DefaultStorageName
		}
		if t := z.TLS; t != nil {
			o.zeo.cert, o.zeo.key, o.zeo.authenticate = t.Certificate, t.Key, t.Authenticate
			o.zeo.certName, o.zeo.keyName, o.zeo.authName = c.Where("zeo.tls.certificate"), c.Where("zeo.tls.key"), c.Where("zeo.tls.authenticate")
		}
	}
	if c.IsPrimary() {
		d := c.Durability
		if d == nil {
			d = config.NewDurability()
		}
		mode, err := primary.ParseDurabilityMode(d.Level)
		if err != nil {
			return o, err
		}
		act, err := primary.ParseTimeoutAction(d.OnSyncTimeout)
		if err != nil {
			return o, err
		}
		o.durability = primary.Durability{Mode: mode, Quorum: d.Quorum, Timeout: d.SyncTimeout, OnTimeout: act}
		return o, nil
	}
	proto := config.DefaultProtocol
	if c.Replication.Protocol != "" {
		proto = c.Replication.Protocol
	}
	p, err := secondary.ParseProtocol(proto)
	if err != nil {
		return o, err
	}
	r := c.Replication
	o.secondary = secondary.Options{Protocol: p, KeepAlive: r.KeepAlive, ReadTimeout: r.ReadTimeout, IdleTimeout: r.IdleTimeout,
		NoCompression: r.Compression != nil && !*r.Compression}
	return o, nil
}

// logWarnings logs what in c is set but changes nothing (the file still
// runs: zrs-recipe once rendered such settings).
func logWarnings(log *slog.Logger, c *config.Config) {
	for _, w := range c.Warnings() {
		log.Warn("config setting has no effect; remove it, or run zrs-recipe again", "setting", w.Error())
	}
}

// parseLevel maps a validated log_level to its slog level.
func parseLevel(s string) slog.Level {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return slog.LevelInfo
	}
	return lvl
}

// newDaemonLogger is the text logger the daemons write to stderr.
func newDaemonLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// watchReload re-reads the config on SIGHUP until ctx ends: log_level is
// applied at once, and every other change is logged as needing a
// restart. A file that no longer parses is logged and changes nothing.
func watchReload(ctx context.Context, hup <-chan os.Signal, file string, running *config.Config, level *slog.LevelVar, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		c, err := config.Load(file)
		if err != nil {
			log.Error("config reload failed; running on unchanged", "err", err)
			continue
		}
		level.Set(parseLevel(c.LogLevel))
		logWarnings(log, c)
		var restart []string
		for _, k := range config.Diff(running, c) {
			if k != "log_level" {
				restart = append(restart, k)
			}
		}
		log.Info("config reloaded", "file", file, "log_level", c.LogLevel)
		if len(restart) > 0 {
			log.Warn("config changes need a restart to apply", "keys", strings.Join(restart, ","))
		}
	}
}
