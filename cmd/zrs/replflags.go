package main

import (
	"flag"
	"strings"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/internal/config"
)

// durabilityFlags are the primary's sync-replication flags.
type durabilityFlags struct {
	mode, onTimeout string
	quorum          int
	timeout         time.Duration
}

func (f *durabilityFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&f.mode, "durability", "async", "`async` (commits never wait) or sync (commits wait for --quorum zrs3 secondaries)")
	fset.IntVar(&f.quorum, "quorum", 1, "sync: how many secondaries (ANY `K`) must acknowledge each commit")
	fset.DurationVar(&f.timeout, "sync-timeout", primary.DefaultSyncTimeout, "sync: how long a commit waits for acknowledgements")
	fset.StringVar(&f.onTimeout, "on-sync-timeout", "fail", "sync: `fail` the commit (it stays committed here) or degrade to async with an error log")
}

// check validates the flags.
func (f *durabilityFlags) check() (primary.Durability, error) {
	mode, err := primary.ParseDurabilityMode(f.mode)
	if err != nil {
		return primary.Durability{}, usagef("primary: --durability: %v", err)
	}
	act, err := primary.ParseTimeoutAction(f.onTimeout)
	if err != nil {
		return primary.Durability{}, usagef("primary: --on-sync-timeout: %v", err)
	}
	if mode != primary.Sync {
		// Without sync they would change nothing, and the operator would
		// believe commits wait for secondaries (their defaults, given by
		// a script that passes every flag, are harmless).
		d := config.Durability{Quorum: f.quorum, SyncTimeout: f.timeout, OnSyncTimeout: f.onTimeout}
		if keys := d.SyncOnlySet(); len(keys) > 0 {
			return primary.Durability{}, usagef("primary: --%s applies to --durability sync only (commits of an async primary wait for no secondary)",
				strings.ReplaceAll(keys[0], "_", "-"))
		}
	}
	if f.quorum < 1 {
		return primary.Durability{}, usagef("primary: --quorum must be at least 1")
	}
	if f.timeout <= 0 {
		return primary.Durability{}, usagef("primary: --sync-timeout must be positive")
	}
	return primary.Durability{Mode: mode, Quorum: f.quorum, Timeout: f.timeout, OnTimeout: act}, nil
}

// protocolFlags are the secondary's protocol flags.
type protocolFlags struct {
	proto       string
	idle, read  time.Duration
	compression bool
}

func (f *protocolFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&f.proto, "protocol", "auto", "`auto` (zrs3, falling back to zrs2.0 for a zc.zrs primary), zrs2 or zrs3")
	fset.DurationVar(&f.idle, "idle-timeout", 0, "zrs3: reconnect after `DURATION` without data or heartbeat (0: 3 heartbeat intervals)")
	fset.DurationVar(&f.read, "read-timeout", 0, "zrs2.0: reconnect after `DURATION` without data (0: never, as zc.zrs)")
	fset.BoolVar(&f.compression, "compression", true, "zrs3: accept zstd compression")
}

func (f *protocolFlags) apply(o *secondary.Options) error {
	p, err := secondary.ParseProtocol(f.proto)
	if err != nil {
		return usagef("secondary: --protocol: %v", err)
	}
	if f.idle < 0 || f.read < 0 {
		return usagef("secondary: --idle-timeout and --read-timeout must not be negative")
	}
	o.Protocol, o.IdleTimeout, o.ReadTimeout, o.NoCompression = p, f.idle, f.read, !f.compression
	return nil
}
