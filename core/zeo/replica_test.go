package zeo

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// TestReplicaServesReadOnlyThenPromotes: a ZEO server on a secondary
// refuses writers, invalidates its readers for every replicated
// transaction, and after promotion accepts writers on the same port.
func TestReplicaServesReadOnlyThenPromotes(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *fs.FileStorage {
		st, err := fs.Open(filepath.Join(dir, name), fs.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	pst := open("primary.fs")
	p := primary.New(pst, primary.Options{})
	raddr, err := p.Listen(ctx, filepath.Join(dir, "repl.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ctx)
	t.Cleanup(func() { p.Shutdown(context.Background()); p.Close() })
	_, paddr := serveTest(t, p, Options{})

	sst := open("secondary.fs")
	var ssrv *Server
	s := secondary.New(sst, raddr.String(), secondary.Options{OnPromote: func() { ssrv.StorageWritable() }})
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	t.Cleanup(func() { s.Close() })
	ssrv, saddr := serveTest(t, s, Options{})

	w := dialTest(t, paddr, nil)
	w.register(false)
	r := dialTest(t, saddr, nil)
	if q, _ := r.callErr("register", pyval.Str("1"), pyval.Bool(false)); q != excReadOnly {
		t.Fatalf("writable register on a replica: %s", q)
	}
	r.register(true) // read_only_fallback: the same connection, read-only
	ro := dialTest(t, saddr, nil)
	ro.register(true) // a client that asked to read only

	oid := w.newOid()
	var serial zodb.Tid
	for i := range 20 {
		serial = w.commit(int64(i+1), store{oid, serial, []byte{byte(i)}})
		inv := r.expect("invalidateTransaction").Args.Items()
		if mustTid(t, inv[0]) != serial || mustOid(t, inv[1].Items()[0]) != oid {
			t.Fatalf("replica invalidation %s, want %s", pyval.Tuple(inv...), serial)
		}
		if got := ro.expect("invalidateTransaction").Args.Items(); mustTid(t, got[0]) != serial {
			t.Fatalf("read-only client's invalidation %s, want %s", pyval.Tuple(got...), serial)
		}
		// No stale read after the invalidation.
		got := r.call("loadBefore", oidValue(oid), tidValue(serial+1)).Items()
		if d := mustBytes(t, got[0]); len(d) != 1 || d[0] != byte(i) || mustTid(t, got[1]) != serial {
			t.Fatalf("replica read after invalidation %s: %s", serial, pyval.Tuple(got...))
		}
	}

	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if err != nil && !errors.Is(err, secondary.ErrPromoted) {
			t.Fatalf("secondary run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("secondary still running after promotion")
	}
	// The fallback client never registers again on its connection: the
	// server ends it, so that it reconnects writable.
	select {
	case <-r.closed:
	case <-time.After(testTimeout):
		t.Fatal("the read-only fallback client is still connected, read-only, after the promotion")
	}
	w2 := dialTest(t, saddr, nil)
	w2.register(false)
	tid := w2.commit(100, store{oid, serial, []byte("promoted")})
	inv := ro.expect("invalidateTransaction").Args.Items()
	if mustTid(t, inv[0]) != tid {
		t.Fatalf("read-only client's invalidation after promotion: %s", pyval.Tuple(inv...))
	}
}

// A read_only_fallback client whose writable register is refused just
// before a promotion, and whose read-only register (the next message on
// the same connection) arrives after StorageWritable looked for fallback
// sessions, is ended too: a ClientStorage never registers again on its
// connection, so it would stay read-only on the new primary for good.
func TestFallbackRegisteredDuringPromotionReconnects(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "s.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var srv *Server
	s := secondary.New(st, "127.0.0.1:1", secondary.Options{OnPromote: func() { srv.StorageWritable() }})
	t.Cleanup(func() { s.Close() })
	srv, addr := serveTest(t, s, Options{})

	r := dialTest(t, addr, nil)
	if q, _ := r.callErr("register", pyval.Str("1"), pyval.Bool(false)); q != excReadOnly {
		t.Fatalf("writable register on a replica: %s", q)
	}
	// The promotion happens during the client's round trip.
	if err := s.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.register(true)
	select {
	case <-r.closed:
	case <-time.After(testTimeout):
		t.Fatal("the read-only fallback client that registered during the promotion is still connected read-only")
	}
}
