package secondary_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// converge is the generous bound for replication to catch up.
const converge = 30 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func openFS(t *testing.T, path string) *fs.FileStorage {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// runningPrimary is a primary serving on a listener, stopped at cleanup.
type runningPrimary struct {
	*primary.Primary
	addr  string
	errc  chan error
	close func()
}

func startPrimary(t *testing.T, path, listen string) *runningPrimary {
	t.Helper()
	return startPrimaryWith(t, path, listen, primary.Options{})
}

func startPrimaryWith(t *testing.T, path, listen string, opts primary.Options) *runningPrimary {
	t.Helper()
	opts.Logger = testLogger(t).With("node", "primary")
	p := primary.New(openFS(t, path), opts)
	a, err := p.Listen(context.Background(), listen)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	rp := &runningPrimary{Primary: p, addr: a.String(), errc: make(chan error, 1)}
	if a.Network() == "unix" {
		rp.addr = listen
	}
	go func() { rp.errc <- p.Serve(context.Background()) }()
	stopped := false
	rp.close = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), converge)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("primary shutdown: %v", err)
		}
		if err := <-rp.errc; err != nil {
			t.Errorf("primary serve: %v", err)
		}
	}
	t.Cleanup(rp.close)
	return rp
}

// runningSecondary is a secondary replicating in a goroutine.
type runningSecondary struct {
	*secondary.Secondary
	done  chan error
	close func()
}

// startSecondary starts a secondary replicating into a FileStorage at
// path from addr; each setup, if any, is given the secondary before it
// starts (to set observers).
func startSecondary(t *testing.T, path, addr string, opts secondary.Options, setup ...func(*secondary.Secondary)) *runningSecondary {
	t.Helper()
	return startSecondaryOn(t, openFS(t, path), addr, opts, setup...)
}

// startSecondaryOn is startSecondary replicating into st.
func startSecondaryOn(t *testing.T, st secondary.Storage, addr string, opts secondary.Options, setup ...func(*secondary.Secondary)) *runningSecondary {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("node", "secondary")
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
		opts.MaxBackoff = 200 * time.Millisecond
	}
	s := secondary.New(st, addr, opts)
	for _, fn := range setup {
		fn(s)
	}
	rs := &runningSecondary{Secondary: s, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(context.Background()) }()
	stopped := false
	rs.close = func() {
		if stopped {
			return
		}
		stopped = true
		if err := s.Close(); err != nil {
			t.Errorf("secondary close: %v", err)
		}
		if err := <-rs.done; err != nil {
			t.Errorf("secondary run: %v", err)
		}
	}
	t.Cleanup(rs.close)
	return rs
}

// waitFor polls cond until it holds or converge passes.
// waitOidsRecorded waits until st records an oid reservation of at least
// r (heard from its primary's heartbeats).
func waitOidsRecorded(t *testing.T, who string, st zodb.OidReserver, r zodb.Oid) {
	t.Helper()
	waitFor(t, who+" to record the oid reservation "+r.String(), func() bool { return st.OidReservation() >= r })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", converge, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitCaughtUp(t *testing.T, p zodb.Loader, s zodb.Loader) {
	t.Helper()
	waitFor(t, "the secondary to catch up", func() bool { return s.LastTransaction() == p.LastTransaction() })
}

// workload commits n transactions to st through Begin/Finish: new objects,
// updates of various sizes, an extension, a delete, an undo of an update
// (backpointers) and an undo of a creation (records with no data).
type workload struct {
	t    *testing.T
	st   zodb.Storage
	n    int
	oids []zodb.Oid
	ser  map[zodb.Oid]zodb.Tid
}

func newWorkload(t *testing.T, st zodb.Storage) *workload {
	return &workload{t: t, st: st, ser: make(map[zodb.Oid]zodb.Tid)}
}

func (w *workload) commit(meta zodb.TxnMeta, fn func(zodb.Txn) error) zodb.Tid {
	w.t.Helper()
	ctx := context.Background()
	txn, err := w.st.Begin(ctx, meta, zodb.BeginOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := fn(txn); err != nil {
		txn.Abort()
		w.t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		w.t.Fatal(err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	w.n++
	return tid
}

func (w *workload) data(oid zodb.Oid, size int) []byte {
	return append([]byte(fmt.Sprintf("object %d commit %d:", oid, w.n)), bytes.Repeat([]byte{byte(w.n)}, size)...)
}

// create stores k new objects in one transaction.
func (w *workload) create(k int) (zodb.Tid, []zodb.Oid) {
	var made []zodb.Oid
	tid := w.commit(zodb.TxnMeta{User: []byte(" tester"), Description: []byte("create")}, func(txn zodb.Txn) error {
		for range k {
			oid, err := w.st.NewOid(context.Background())
			if err != nil {
				return err
			}
			if err := txn.Store(oid, 0, w.data(oid, int(oid)%300)); err != nil {
				return err
			}
			made = append(made, oid)
		}
		return nil
	})
	for _, oid := range made {
		w.ser[oid] = tid
	}
	w.oids = append(w.oids, made...)
	return tid, made
}

// update rewrites the given objects in one transaction.
func (w *workload) update(meta zodb.TxnMeta, oids ...zodb.Oid) zodb.Tid {
	tid := w.commit(meta, func(txn zodb.Txn) error {
		for _, oid := range oids {
			if err := txn.Store(oid, w.ser[oid], w.data(oid, (w.n*37)%2000)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, oid := range oids {
		w.ser[oid] = tid
	}
	return tid
}

// pyExtension is a transaction extension as Python ZODB writes it: a
// protocol-3 pickle of {'user_name': 'x', 'k': 1}.
var pyExtension = []byte("\x80\x03}q\x00(X\t\x00\x00\x00user_nameq\x01X\x01\x00\x00\x00xq\x02X\x01\x00\x00\x00kq\x03K\x01u.")

// run commits n transactions (n >= 10) of every kind.
func (w *workload) run(n int) {
	w.t.Helper()
	start := w.n
	w.create(3)
	_, keep := w.create(2)
	updTid := w.update(zodb.TxnMeta{Description: []byte("to be undone")}, keep[0])
	w.commit(zodb.TxnMeta{Description: []byte("undo an update")}, func(txn zodb.Txn) error {
		_, err := txn.Undo(context.Background(), updTid)
		return err
	})
	w.ser[keep[0]] = 0 // reload below
	if _, s, err := w.st.Load(context.Background(), keep[0]); err == nil {
		w.ser[keep[0]] = s
	}
	crTid, created := w.create(1)
	w.commit(zodb.TxnMeta{Description: []byte("undo a creation")}, func(txn zodb.Txn) error {
		_, err := txn.Undo(context.Background(), crTid)
		return err
	})
	w.oids = w.oids[:len(w.oids)-len(created)]
	w.commit(zodb.TxnMeta{Description: []byte("delete")}, func(txn zodb.Txn) error {
		return txn.Delete(keep[1], w.ser[keep[1]])
	})
	w.oids = remove(w.oids, keep[1])
	w.update(zodb.TxnMeta{User: []byte("/ admin"), Description: []byte("with extension"), Extension: pyExtension}, w.oids[0])
	for w.n-start < n {
		if w.n%4 == 0 {
			w.create(1 + w.n%3)
			continue
		}
		a := w.oids[w.n%len(w.oids)]
		b := w.oids[(w.n*7)%len(w.oids)]
		if a == b {
			w.update(zodb.TxnMeta{Description: []byte(fmt.Sprintf("update %d", w.n))}, a)
		} else {
			w.update(zodb.TxnMeta{Description: []byte(fmt.Sprintf("update %d", w.n))}, a, b)
		}
	}
}

func remove(s []zodb.Oid, x zodb.Oid) []zodb.Oid {
	out := s[:0]
	for _, o := range s {
		if o != x {
			out = append(out, o)
		}
	}
	return out
}

// sameFile fails unless the two files have the same bytes.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ab, bb) {
		return
	}
	n := min(len(ab), len(bb))
	i := 0
	for i < n && ab[i] == bb[i] {
		i++
	}
	t.Fatalf("%s (%d bytes) and %s (%d bytes) differ from offset %d", filepath.Base(a), len(ab), filepath.Base(b), len(bb), i)
}

// pipeListener is an in-memory net.Listener whose Dial gives the other
// end of a net.Pipe.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once // Close may be called concurrently (Serve and Shutdown both close)
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) Dial(ctx context.Context) (net.Conn, error) {
	c1, c2 := net.Pipe()
	select {
	case l.conns <- c2:
		return c1, nil
	case <-l.done:
		return nil, io.ErrClosedPipe
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serveEach listens on a loopback TCP port until the test ends and runs
// handle on each connection (numbered from 0) in a goroutine of its own,
// closing the connection when handle returns. It returns the address.
func serveEach(t *testing.T, handle func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(n, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// relay copies between c and up both ways until up's side ends.
func relay(c, up net.Conn) {
	go io.Copy(up, c)
	io.Copy(c, up)
}
