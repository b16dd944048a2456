package primary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

const converge = 30 * time.Second

// served is a primary on loopback TCP, shut down at cleanup.
type served struct {
	*Primary
	addr string
	errc chan error
}

func serve(t *testing.T) *served {
	t.Helper()
	return serveStorage(t, openTestFS(t), Options{})
}

func openTestFS(t *testing.T) *fs.FileStorage {
	t.Helper()
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serveStorage is serve for a given storage and options.
func serveStorage(t *testing.T, st Storage, opts Options) *served {
	t.Helper()
	p := New(st, opts)
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &served{Primary: p, addr: a.String(), errc: make(chan error, 1)}
	go func() { s.errc <- p.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), converge)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-s.errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// commit stores size bytes in a new object and returns the tid.
func commit(t *testing.T, st zodb.Storage, size int) zodb.Tid {
	t.Helper()
	return testutil.CommitNew(t, st, zodb.TxnMeta{Description: []byte("test")}, zodb.BeginOptions{},
		append([]byte("data"), make([]byte, size)...))
}

// dial connects a raw client and sends the given handshake frames.
func dial(t *testing.T, addr string, frames ...[]byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, f := range frames {
		if err := zrsproto.WriteFrame(c, f); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func tidBytes(t zodb.Tid) []byte { b := t.Bytes(); return b[:] }

// readAll reads transactions until the connection ends and returns their
// tids.
func readAll(t *testing.T, c net.Conn, start zodb.Tid) ([]zodb.Tid, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(converge))
	sr := zrsproto.NewStreamReader(c, start)
	var tids []zodb.Tid
	for {
		info, err := sr.ReadTxn()
		if err != nil {
			return tids, err
		}
		tids = append(tids, info.Tid)
	}
}

// expectClosed requires the primary to close c without sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(converge))
	b, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // closed with our unread frames pending
	}
	if len(b) != 0 || err != nil {
		t.Fatalf("got %d bytes, %v; want a close with nothing sent", len(b), err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	p := serve(t)
	last := commit(t, p, 10)
	for name, frames := range map[string][][]byte{
		"bad protocol":    {[]byte("zrs9.9"), make([]byte, 8)},
		"empty protocol":  {{}, make([]byte, 8)},
		"oversize first":  {make([]byte, 15)},
		"oversize second": {[]byte(zrsproto.Proto20), make([]byte, 15)},
		"7-byte tid":      {[]byte(zrsproto.Proto20), make([]byte, 7)},
		"tid too high":    {[]byte(zrsproto.Proto21), tidBytes(last + 1)},
	} {
		t.Run(name, func(t *testing.T) {
			expectClosed(t, dial(t, p.addr, frames...))
		})
	}
	if n := len(p.Status().Secondaries); n != 0 {
		t.Errorf("%d secondaries listed after refusals", n)
	}
	// A primary with no history at all: only the tid check refuses a
	// secondary ahead of it (there is no history for it to diverge from).
	empty := serve(t)
	expectClosed(t, dial(t, empty.addr, []byte(zrsproto.Proto20), tidBytes(zodb.MaxTid)))
	if n := len(empty.Status().Secondaries); n != 0 {
		t.Errorf("an empty primary lists %d secondaries after refusing one ahead of it", n)
	}
}

// Both protocol names are served; a start tid in the middle gets only the
// later transactions.
func TestStreamsFromStart(t *testing.T) {
	p := serve(t)
	var tids []zodb.Tid
	for range 10 {
		tids = append(tids, commit(t, p, 100))
	}
	for _, proto := range []string{zrsproto.Proto20, zrsproto.Proto21} {
		for _, start := range []zodb.Tid{0, tids[4], tids[9]} {
			c := dial(t, p.addr, []byte(proto), tidBytes(start))
			var want []zodb.Tid
			for _, tid := range tids {
				if tid > start {
					want = append(want, tid)
				}
			}
			// A keep-alive is accepted: the stream goes on (caught up, it
			// is silent) ...
			zrsproto.WriteFrame(c, nil)
			sr := zrsproto.NewStreamReader(c, start)
			var got []zodb.Tid
			for range want {
				info, err := sr.ReadTxn()
				if err != nil {
					t.Fatalf("%s from %s: after %v: %v", proto, start, got, err)
				}
				got = append(got, info.Tid)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s from %s: got %v, want %v", proto, start, got, want)
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s from %s: after a keep-alive, caught up: %d bytes, %v; want the stream open and silent", proto, start, n, err)
			}
			// ... and a non-empty frame ends it.
			zrsproto.WriteFrame(c, []byte("x"))
			expectClosed(t, c)
		}
	}
}

// A secondary that never reads does not block commits, and Shutdown
// bounded by a context cuts it off.
func TestStalledSecondaryDoesNotBlockCommits(t *testing.T) {
	p := serve(t)
	c := dial(t, p.addr, []byte(zrsproto.Proto20), make([]byte, 8))
	_ = c // never read
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			commit(t, p, 64<<10) // 6.4 MB in all: far more than socket buffers
		}
	}()
	select {
	case <-done:
	case <-time.After(converge):
		t.Fatal("100 commits did not complete with a stalled secondary")
	}
	ss := p.Status().Secondaries
	if len(ss) != 1 || ss[0].LastSent == p.LastTransaction() {
		t.Fatalf("status %+v: the stalled secondary should lag", ss)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// Shutdown lets every connected secondary receive what was committed.
func TestShutdownDrains(t *testing.T) {
	p := serve(t)
	commit(t, p, 10)
	const n = 5
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dial(t, p.addr, []byte(zrsproto.Proto20), make([]byte, 8))
	}
	deadline := time.Now().Add(converge)
	for len(p.Status().Secondaries) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for range 20 {
		commit(t, p, 32<<10)
	}
	last := p.LastTransaction()
	results := make(chan error, n)
	for _, c := range conns {
		go func() {
			tids, err := readAll(t, c, 0)
			c.Close() // as a secondary does at the end of the stream
			switch {
			case !errors.Is(err, io.EOF):
				results <- err
			case len(tids) != 21 || tids[20] != last:
				results <- fmt.Errorf("got %d transactions ending %v, want 21 ending %s", len(tids), tids[len(tids)-1:], last)
			default:
				results <- nil
			}
		}()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Begin(context.Background(), zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrClosed) {
		t.Errorf("Begin after Close: %v", err)
	}
}

// Serve needs a listener and ends with its context.
func TestServeLifecycle(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(st, Options{})
	defer p.Close()
	if err := p.Serve(context.Background()); err == nil {
		t.Fatal("Serve without a listener succeeded")
	}
	if _, err := p.Listen(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Serve(ctx) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

func TestHeadSignalCoalesces(t *testing.T) {
	s := newHeadSignal()
	c := s.C()
	for range 1000 {
		s.Notify() // never blocks, with or without waiters
	}
	select {
	case <-c:
	default:
		t.Fatal("channel taken before Notify not closed")
	}
	c2 := s.C()
	select {
	case <-c2:
		t.Fatal("fresh channel already closed")
	default:
	}
}

// A Shutdown whose time has run out warns of the secondaries it cuts
// off, naming them, and of nothing when there are none (the daemon may
// have spent the stop's time on a ZEO transaction).
func TestShutdownOutOfTimeWarnsOfSecondariesCutOff(t *testing.T) {
	const warning = "time ran out before every secondary had everything"
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		logs := &testutil.SyncBuffer{}
		p := New(openTestFS(t), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if _, err := p.Listen(context.Background(), "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		commit(t, p, 10)
		if err := p.Shutdown(expired); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), warning) {
			t.Fatalf("warned with no secondary connected:\n%s", logs)
		}
	}

	logs := &testutil.SyncBuffer{}
	p := New(openTestFS(t), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Serve(context.Background()) }()
	for range 20 {
		commit(t, p, 256<<10) // more than the socket buffers hold
	}
	c := dial(t, a.String(), []byte(zrsproto.Proto20), make([]byte, 8)) // never reads
	for deadline := time.Now().Add(converge); len(p.Status().Secondaries) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no stream for the secondary")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-errc
	line := logLine(logs.String(), warning)
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, c.LocalAddr().String()) {
		t.Fatalf("no warning naming the secondary cut off (%s):\n%s", c.LocalAddr(), logs)
	}
}
