package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// localPrimary is an in-process primary serving on a loopback port.
type localPrimary struct {
	*primary.Primary
	addr string
	errc chan error
}

func startPrimary(ctx context.Context, path string) (*localPrimary, error) {
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		return nil, err
	}
	p := primary.New(st, primary.Options{})
	a, err := p.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		p.Close()
		return nil, err
	}
	lp := &localPrimary{Primary: p, addr: a.String(), errc: make(chan error, 1)}
	go func() { lp.errc <- p.Serve(context.Background()) }()
	return lp, nil
}

func (lp *localPrimary) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := lp.Shutdown(ctx)
	return errors.Join(err, <-lp.errc)
}

// tracked is an in-process secondary that notes when each transaction
// was applied and signals when a target tid is reached.
type tracked struct {
	*secondary.Secondary
	mu      sync.Mutex
	applied map[zodb.Tid]time.Time // when record is set; guarded by mu
	record  bool
	target  zodb.Tid // guarded by mu
	reached chan struct{}
	done    chan error
	cancel  context.CancelFunc
}

// protoFlag is the --proto flag of the measuring subcommands: the protocol
// the in-process secondaries ask for.
func protoFlag(fset *flag.FlagSet) *string {
	return fset.String("proto", "", "secondary protocol: zrs2 (zc.zrs's), zrs3 (native, zstd), or empty for the default (zrs3, falling back to zrs2)")
}

// protoLabel names a result by what ran and the protocol asked for.
func protoLabel(what, proto string) string {
	return what + " (" + cmp.Or(proto, "default") + ")"
}

func newTracked(path, addr, proto string, record bool, dialer secondary.Dialer) (*tracked, error) {
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		return nil, err
	}
	t := &tracked{applied: make(map[zodb.Tid]time.Time), record: record}
	opts := secondary.Options{
		OnCommit: t.onCommit, Dialer: dialer,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	if err := setProtocol(&opts, proto); err != nil {
		st.Close()
		return nil, err
	}
	t.Secondary = secondary.New(st, addr, opts)
	return t, nil
}

func (t *tracked) onCommit(tid zodb.Tid, _ []zodb.Oid) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.record {
		t.applied[tid] = now
	}
	if t.reached != nil && tid >= t.target {
		close(t.reached)
		t.reached = nil
	}
}

// expect returns a channel closed once tid (or a later one) is applied.
func (t *tracked) expect(tid zodb.Tid) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	if t.LastTransaction() >= tid {
		close(ch)
		return ch
	}
	t.target, t.reached = tid, ch
	return ch
}

// start runs the secondary until stop.
func (t *tracked) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.done = cancel, make(chan error, 1)
	go func() { t.done <- t.Run(ctx) }()
}

// stop ends Run (the storage stays open; Run may start again).
func (t *tracked) stop() error {
	t.cancel()
	return <-t.done
}

// fileSize is the size of path in bytes.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// lastTid reads the last tid of a FileStorage without locking it (its
// primary may be running).
func lastTid(path string) (zodb.Tid, error) {
	st, err := fs.Open(path, fs.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.LastTransaction(), nil
}

// runCatchUp replicates SOURCE in full into an empty file and reports the
// throughput in MB/s of SOURCE's bytes.
func runCatchUp(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("catchup", flag.ContinueOnError)
	remote := fset.String("primary", "", "replicate from the primary at `ADDR` (serving SOURCE) instead of an in-process one")
	label := fset.String("label", "", "label for the result (default: zrs → zrs and the protocol)")
	proto := protoFlag(fset)
	cpuProfile := fset.String("cpuprofile", "", "write a CPU profile of the catch-up to `FILE` (in-process primary and secondary)")
	pos, err := parse(fset, args, 1)
	if err != nil {
		return err
	}
	source := pos[0]
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	size, err := fileSize(source)
	if err != nil {
		return err
	}
	target, err := lastTid(source)
	if err != nil {
		return err
	}
	addr := *remote
	var lp *localPrimary
	if addr == "" {
		if lp, err = startPrimary(ctx, source); err != nil {
			return err
		}
		addr = lp.addr
	} else if err := waitListening(ctx, addr, time.Minute); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Dir(source), "catchup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sec, err := newTracked(filepath.Join(dir, "Data.fs"), addr, *proto, false, nil)
	if err != nil {
		return err
	}
	reached := sec.expect(target)
	start := time.Now()
	sec.start()
	select {
	case <-reached:
	case <-ctx.Done():
		return ctx.Err()
	}
	elapsed := time.Since(start)
	serr := sec.stop()
	cerr := sec.Close()
	var perr error
	if lp != nil {
		perr = lp.stop()
	}
	if err := errors.Join(serr, cerr, perr); err != nil {
		return err
	}
	return printJSON(map[string]any{"op": "catchup", "label": cmp.Or(*label, protoLabel("zrs → zrs", *proto)), "proto": *proto, "bytes": size,
		"seconds": round3(elapsed.Seconds()), "mb_s": round3(float64(size) / 1e6 / elapsed.Seconds())})
}

// waitListening waits until addr accepts a TCP connection.
func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, limit, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
