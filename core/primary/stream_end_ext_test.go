package primary_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// A zrs secondary catching up when the primary is stopped (SIGTERM: "the
// primary's connected secondaries receive what was committed") ends with
// the primary's last transaction, through the daemon's counted listener.
func TestShutdownRealSecondaryGetsEverything(t *testing.T) {
	dir := t.TempDir()
	pst := openFS(t, filepath.Join(dir, "p.fs"))
	ctx := context.Background()
	var last zodb.Tid
	for range 80 {
		txn, err := pst.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oid, _ := pst.NewOid(ctx)
		if err := txn.Store(oid, 0, make([]byte, 256<<10)); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if last, err = txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p := primary.New(pst, primary.Options{})
	// Listening as the daemon does: its connections counted for the
	// metrics (which must not hide the half-close).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddListener(admin.NewMetrics().CountListener(ln)); err != nil {
		t.Fatal(err)
	}
	go p.Serve(ctx)
	s := startSecondary(t, filepath.Join(dir, "s.fs"), ln.Addr().String())
	waitFor(t, "the secondary's first transaction", func() bool { return s.LastTransaction() != 0 })
	sctx, cancel := context.WithTimeout(ctx, converge)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	// The secondary has what it received; give it time to apply it.
	prev, stable := zodb.Tid(0), 0
	for stable < 20 {
		time.Sleep(50 * time.Millisecond)
		if cur := s.LastTransaction(); cur == prev {
			stable++
		} else {
			prev, stable = cur, 0
		}
	}
	if got := s.LastTransaction(); got != last {
		t.Fatalf("after the primary's Shutdown the secondary stopped at %s; the primary's last is %s", got, last)
	}
}

// A TCP secondary's socket gets the send timeout that drops a vanished
// host (netaddr.SetSendTimeout, whose test shows its effect) only when
// one is set, through the daemon's counted listener: by default the
// kernel's behaviour stays (see Options.SendTimeout).
func TestSecondaryConnectionsGetSendTimeout(t *testing.T) {
	for _, c := range []struct {
		opt  time.Duration
		want int
	}{{0, 0}, {3 * time.Second, 3000}, {-1, 0}} {
		pst := openFS(t, filepath.Join(t.TempDir(), "p.fs"))
		p := primary.New(pst, primary.Options{SendTimeout: c.opt})
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &testutil.RecordingListener{Listener: tcp}
		if err := p.AddListener(admin.NewMetrics().CountListener(ln)); err != nil {
			t.Fatal(err)
		}
		go p.Serve(context.Background())
		conn, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := zrsproto.WriteHandshake(conn, zrsproto.Proto21, 0); err != nil {
			t.Fatal(err)
		}
		// The option is set before the stream starts, so once the
		// secondary is listed it is there.
		waitFor(t, "the secondary to be listed", func() bool { return len(p.Status().Secondaries) == 1 })
		if got := testutil.UserTimeout(t, ln.Conns()[0]); got != c.want {
			t.Errorf("SendTimeout %v: the secondary's socket has TCP_USER_TIMEOUT %d ms, want %d", c.opt, got, c.want)
		}
		conn.Close()
		sctx, cancel := context.WithTimeout(context.Background(), converge)
		if err := p.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}
