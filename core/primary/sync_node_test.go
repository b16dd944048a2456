package primary_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/admin"
)

// blackholeProxy forwards one connection to target until blackhole is
// called; from then on it drops everything in both directions and never
// closes the primary's side (a path that died without a FIN/RST reaching
// the primary: a switch, a NAT, a firewall, a host that vanished).
// internal/faultproxy's Stall cannot stand in: it passes a half-close
// on, and a write to a closed client closes the server side.
type blackholeProxy struct {
	ln     net.Listener
	target string
	dead   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bp := &blackholeProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		bp.mu.Lock()
		for _, c := range bp.conns {
			c.Close()
		}
		bp.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			bp.mu.Lock()
			bp.conns = append(bp.conns, c, up)
			bp.mu.Unlock()
			go bp.pipe(up, c)
			go bp.pipe(c, up)
		}
	}()
	return bp
}

func (bp *blackholeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !bp.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !bp.dead.Load() {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}
			if err == io.EOF {
				return
			}
			return
		}
	}
}

func (bp *blackholeProxy) blackhole() { bp.dead.Store(true) }

// Quorum 2 with ONE secondary: it acknowledges a commit over a connection
// whose path then dies silently (the primary never sees it close), times
// out and reconnects directly from that commit. The primary must not count
// the stale connection and the new one as two secondaries holding the
// commit: the hello names the node, and a node counts once. The commit
// fails with ErrNotReplicated.
func TestSyncQuorumCountsANodeOnce(t *testing.T) {
	dir := t.TempDir()
	p, addr := startPrimary(t, filepath.Join(dir, "p.fs"),
		primary.Durability{Mode: primary.Sync, Quorum: 2, Timeout: 3 * time.Second})
	proxy := newBlackholeProxy(t, addr)
	var dials atomic.Int32
	dial := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		if dials.Add(1) == 1 {
			return d.DialContext(ctx, "tcp", proxy.ln.Addr().String())
		}
		return d.DialContext(ctx, "tcp", addr) // the path came back another way
	})
	s := secondary.New(openFS(t, filepath.Join(dir, "s.fs")), addr, secondary.Options{
		Protocol: secondary.ProtoNative, Dialer: dial, IdleTimeout: 300 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	waitFor(t, "the secondary to connect", func() bool { return len(p.Status().Secondaries) == 1 })

	type result struct {
		tid zodb.Tid
		err error
	}
	res := make(chan result, 1)
	t0 := time.Now()
	go func() {
		tid, err := commit(context.Background(), p, 1)
		res <- result{tid, err}
	}()
	// The one secondary acknowledges the commit (1 of 2).
	waitFor(t, "the acknowledgement", func() bool {
		ss := p.Status().Secondaries
		return len(ss) == 1 && ss[0].Acked != 0 && ss[0].Acked == p.LastTransaction()
	})
	proxy.blackhole()
	r := <-res
	t.Logf("commit %s returned after %v: %v; primary sees %d secondaries", r.tid, time.Since(t0), r.err, len(p.Status().Secondaries))
	for _, ss := range p.Status().Secondaries {
		t.Logf("  stream %s start %s acked %s", ss.Peer, ss.Start, ss.Acked)
	}
	if !errors.Is(r.err, primary.ErrNotReplicated) {
		t.Fatalf("commit %s acknowledged as replicated to 2 secondaries (quorum 2), but only ONE secondary exists (err %v)", r.tid, r.err)
	}
}

// slowStorage is a secondary's storage whose Begin, while block is set,
// waits for a token on release: the secondary applies one transaction per
// token and stalls before the next.
type slowStorage struct {
	*fs.FileStorage
	block   atomic.Bool
	release chan struct{}
}

func (s *slowStorage) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	if s.block.Load() {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.FileStorage.Begin(ctx, meta, opts)
}

// With degrade, sync mode must not be restored as soon as the secondary
// has acknowledged the commit that timed out while it is still behind:
// the next commit would wait the whole timeout and degrade again, a stall
// after another for a secondary slower than the commit rate (and through
// ZEO every later commit's reply waits behind each). It is restored once
// the secondary has caught up.
func TestDegradeEndsOnlyWhenCaughtUp(t *testing.T) {
	dir := t.TempDir()
	const timeout = 300 * time.Millisecond
	p, addr := startPrimary(t, filepath.Join(dir, "p.fs"),
		primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: timeout, OnTimeout: primary.Degrade})
	st := &slowStorage{FileStorage: openFS(t, filepath.Join(dir, "s.fs")), release: make(chan struct{})}
	s := secondary.New(st, addr, secondary.Options{Protocol: secondary.ProtoNative,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	t.Cleanup(func() { close(st.release); s.Close(); <-done })
	waitFor(t, "the secondary to connect", func() bool { return len(p.Status().Secondaries) == 1 })
	ctx := context.Background()
	if _, err := commit(ctx, p, 0); err != nil {
		t.Fatal(err)
	}

	st.block.Store(true)
	t1, err := commit(ctx, p, 1) // times out: degraded
	if err != nil || !p.Degraded() {
		t.Fatalf("commit %s: %v, degraded %v; want degraded", t1, err, p.Degraded())
	}
	for i := range 3 { // asynchronous meanwhile
		if _, err := commit(ctx, p, 2+i); err != nil {
			t.Fatal(err)
		}
	}
	st.release <- struct{}{} // the secondary applies t1, then stalls again
	waitFor(t, "the acknowledgement of the commit that timed out", func() bool {
		ss := p.Status().Secondaries
		return len(ss) == 1 && ss[0].Acked == t1
	})
	t0 := time.Now()
	if _, err := commit(ctx, p, 9); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took >= timeout {
		t.Errorf("a commit waited %v (the sync timeout) for a secondary still 3 commits behind: degraded mode ended too soon", took)
	}
	if !p.Degraded() {
		t.Error("not degraded while the secondary is behind")
	}
	// Operators see it: /status and zrs_sync_degraded.
	pn := &admin.PrimaryNode{Primary: p, Path: "p.fs"}
	if as := pn.Status(); !as.SyncDegraded || as.Durability != "sync ANY 1, timeout 300ms, degrade" {
		t.Errorf("/status: durability %q, sync_degraded %v", as.Durability, as.SyncDegraded)
	}
	if v := degradedGauge(t, pn); v != 1 {
		t.Errorf("zrs_sync_degraded = %v while degraded", v)
	}

	st.block.Store(false)
	st.release <- struct{}{} // the Begin already waiting
	waitFor(t, "the secondary caught up", func() bool {
		ss := p.Status().Secondaries
		return len(ss) == 1 && ss[0].Acked == p.LastTransaction()
	})
	// A quiet primary reports it without waiting for a commit.
	if p.Degraded() || degradedGauge(t, pn) != 0 {
		t.Error("still reported degraded once the secondary caught up")
	}
	if _, err := commit(ctx, p, 10); err != nil || p.Degraded() {
		t.Errorf("once caught up: commit %v, degraded %v; want sync again", err, p.Degraded())
	}
	if v := degradedGauge(t, pn); v != 0 {
		t.Errorf("zrs_sync_degraded = %v once restored", v)
	}
}

// degradedGauge scrapes zrs_sync_degraded from the metrics of n.
func degradedGauge(t *testing.T, n admin.Node) float64 {
	t.Helper()
	m := admin.NewMetrics()
	m.SetNode(n)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "zrs_sync_degraded" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no zrs_sync_degraded")
	return 0
}
