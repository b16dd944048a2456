package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// firstByteConn notes when the first byte arrives from the primary.
type firstByteConn struct {
	net.Conn
	once  sync.Once
	first chan time.Time
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() { c.first <- time.Now() })
	}
	return n, err
}

// runResume opens PRIMARY (a huge file, see bigfile) behind an in-process
// primary and SECONDARY (the same without the last transaction) behind an
// in-process secondary, and measures, --trials times, the time from the
// secondary dialling to the first byte of the stream and to the missing
// transaction being applied. Between trials the primary commits one more
// transaction, so the secondary is one behind again.
func runResume(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("resume", flag.ContinueOnError)
	trials := fset.Int("trials", 20, "number of resumes")
	proto := protoFlag(fset)
	pos, err := parse(fset, args, 2)
	if err != nil {
		return err
	}
	size, err := fileSize(pos[0])
	if err != nil {
		return err
	}
	openStart := time.Now()
	lp, err := startPrimary(ctx, pos[0])
	if err != nil {
		return err
	}
	openPrimary := time.Since(openStart)
	var (
		mu     sync.Mutex
		dials  []time.Time
		firsts chan time.Time
	)
	dialer := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		ch := firsts
		mu.Unlock()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", lp.addr)
		if err != nil {
			return nil, err
		}
		return &firstByteConn{Conn: c, first: ch}, nil
	})
	sec, err := newTracked(pos[1], lp.addr, *proto, false, dialer)
	if err != nil {
		lp.stop()
		return err
	}
	fail := func(err error) error { return errors.Join(err, sec.Close(), lp.stop()) }
	if sec.LastTransaction() >= lp.LastTransaction() {
		return fail(fmt.Errorf("resume: the secondary (%s) is not behind the primary (%s)", sec.LastTransaction(), lp.LastTransaction()))
	}
	pool := newRecordPool(4)
	var toFirst, toApplied []time.Duration
	for i := range *trials {
		if i > 0 { // one more transaction on the primary: the secondary is one behind again
			t, err := lp.Begin(ctx, zodb.TxnMeta{Description: []byte("resume")}, zodb.BeginOptions{})
			if err != nil {
				return fail(err)
			}
			oid, err := lp.NewOid(ctx)
			if err == nil {
				err = t.Store(oid, 0, pool.record())
			}
			if err == nil {
				err = t.Vote(ctx)
			}
			if err == nil {
				_, err = t.Finish(ctx)
			}
			if err != nil {
				t.Abort()
				return fail(err)
			}
		}
		mu.Lock()
		dials, firsts = nil, make(chan time.Time, 1)
		ch := firsts
		mu.Unlock()
		reached := sec.expect(lp.LastTransaction())
		sec.start()
		var first time.Time
		select {
		case first = <-ch:
		case <-time.After(time.Minute):
			return fail(errors.New("resume: no byte from the primary within a minute"))
		}
		select {
		case <-reached:
		case <-time.After(time.Minute):
			return fail(errors.New("resume: the transaction was not applied within a minute"))
		}
		applied := time.Now()
		if err := sec.stop(); err != nil {
			return fail(err)
		}
		mu.Lock()
		dial := dials[len(dials)-1]
		mu.Unlock()
		toFirst = append(toFirst, first.Sub(dial))
		toApplied = append(toApplied, applied.Sub(dial))
	}
	if err := errors.Join(sec.Close(), lp.stop()); err != nil {
		return err
	}
	f := percentiles(toFirst, 50, 100)
	a := percentiles(toApplied, 50, 100)
	return printJSON(map[string]any{"op": "resume", "label": protoLabel("zrs → zrs", *proto), "proto": *proto, "bytes": size, "trials": *trials,
		"first_byte_p50_ms": f[0], "first_byte_max_ms": f[1], "applied_p50_ms": a[0], "applied_max_ms": a[1],
		"primary_open_ms": round3(ms(openPrimary))})
}
