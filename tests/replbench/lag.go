package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// runLag commits at a steady rate to an in-process primary for a while and
// measures, per transaction, the time from the primary's Finish returning
// to the in-process secondary's Finish of the same transaction returning
// (same process, same monotonic clock).
func runLag(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("lag", flag.ContinueOnError)
	rate := fset.Float64("rate", 500, "commits per second")
	seconds := fset.Float64("seconds", 10, "how long to commit")
	proto := protoFlag(fset)
	dirFlag := fset.String("dir", "", "directory for the two files (default: a temporary one)")
	if _, err := parse(fset, args, 0); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(*dirFlag, "replbench-lag-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := startPrimary(ctx, filepath.Join(dir, "primary.fs"))
	if err != nil {
		return err
	}
	sec, err := newTracked(filepath.Join(dir, "secondary.fs"), lp.addr, *proto, true, nil)
	if err != nil {
		lp.stop()
		return err
	}
	sec.start()
	pool := newRecordPool(3)
	commit := func() (zodb.Tid, time.Duration, time.Time, error) {
		t0 := time.Now()
		t, err := lp.Begin(ctx, zodb.TxnMeta{User: []byte(" bench"), Description: []byte("lag")}, zodb.BeginOptions{})
		if err != nil {
			return 0, 0, t0, err
		}
		for range 1 + pool.rng.IntN(5) {
			oid, err := lp.NewOid(ctx)
			if err != nil {
				t.Abort()
				return 0, 0, t0, err
			}
			if err := t.Store(oid, 0, pool.record()); err != nil {
				t.Abort()
				return 0, 0, t0, err
			}
		}
		if err := t.Vote(ctx); err != nil {
			t.Abort()
			return 0, 0, t0, err
		}
		tid, err := t.Finish(ctx)
		now := time.Now()
		return tid, now.Sub(t0), now, err
	}
	fail := func(err error) error {
		return errors.Join(err, sec.stop(), sec.Close(), lp.stop())
	}
	// Connect and warm up: the first transaction is not measured.
	tid, _, _, err := commit()
	if err != nil {
		return fail(err)
	}
	select {
	case <-sec.expect(tid):
	case <-time.After(time.Minute):
		return fail(errors.New("lag: secondary did not connect within a minute"))
	}
	n := int(*rate * *seconds)
	period := time.Duration(float64(time.Second) / *rate)
	finished := make(map[zodb.Tid]time.Time, n)
	commitLat := make([]time.Duration, 0, n)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
			time.Sleep(d)
		}
		tid, lat, at, err := commit()
		if err != nil {
			return fail(err)
		}
		finished[tid] = at
		commitLat = append(commitLat, lat)
	}
	elapsed := time.Since(start)
	select {
	case <-sec.expect(tid):
	case <-time.After(time.Minute):
	}
	for tid = range finished {
		select {
		case <-sec.expect(tid):
		case <-time.After(time.Minute):
			return fail(errors.New("lag: secondary did not catch up within a minute"))
		}
	}
	if err := errors.Join(sec.stop(), sec.Close(), lp.stop()); err != nil {
		return err
	}
	sec.mu.Lock()
	lags := make([]time.Duration, 0, len(finished))
	for tid, at := range finished {
		lags = append(lags, sec.applied[tid].Sub(at))
	}
	sec.mu.Unlock()
	lp50 := percentiles(lags, 50, 90, 99, 100)
	cp := percentiles(commitLat, 50, 99)
	return printJSON(map[string]any{"op": "lag", "label": protoLabel("zrs → zrs", *proto), "proto": *proto, "rate": *rate, "commits": n,
		"achieved_rate": round3(float64(n) / elapsed.Seconds()),
		"p50_ms":        lp50[0], "p90_ms": lp50[1], "p99_ms": lp50[2], "max_ms": lp50[3],
		"commit_p50_ms": cp[0], "commit_p99_ms": cp[1]})
}
