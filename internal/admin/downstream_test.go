package admin_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/netaddr"
	"github.com/zrs-replication/zrs/internal/testutil"

	"github.com/prometheus/common/expfmt"
)

// gateConn blocks Reads while the gate is shut: the secondary stops
// reading (a stalled disk, a SIGSTOPped process), so the primary's
// socket buffers fill and the secondary falls behind.
type gateConn struct {
	net.Conn
	g *gate
}

type gate struct {
	mu   sync.Mutex
	shut chan struct{} // nil: open
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.shut
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (c *gateConn) Read(b []byte) (int, error) {
	c.g.wait()
	return c.Conn.Read(b)
}

// dialer dials sock and puts the connection behind the gate.
func (g *gate) dialer(sock string) secondary.DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := netaddr.Dial(ctx, sock)
		if err != nil {
			return nil, err
		}
		return &gateConn{Conn: c, g: g}, nil
	}
}

func bigCommit(t *testing.T, st zodb.Storage, size int) zodb.Tid {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	return testutil.CommitNew(t, st, zodb.TxnMeta{}, zodb.BeginOptions{}, data)
}

// A secondary that falls behind (it stops reading): its lag in
// transactions and bytes, which the primary knows, shows in /status and
// as zrs_secondary_lag_transactions / _bytes, and it is not caught up
// although everything may have been sent: a zrs3 secondary's position is
// what it acknowledged.
func TestDownstreamLagFromTheCore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p, pm, sock := servingPrimary(t, dir)
	g := &gate{}
	s := secondary.New(openFS(t, filepath.Join(dir, "s.fs")), sock, secondary.Options{
		Dialer: g.dialer(sock), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		IdleTimeout: time.Hour})
	runDone := make(chan error, 1)
	runCtx, cancelRun := context.WithCancel(ctx)
	go func() { runDone <- s.Run(runCtx) }()
	pn := &admin.PrimaryNode{Primary: p, Path: "p.fs"}
	pm.SetNode(pn)
	defer func() {
		g.mu.Lock()
		if g.shut != nil {
			close(g.shut)
			g.shut = nil
		}
		g.mu.Unlock()
		cancelRun()
		s.Close()
		<-runDone
		p.Close()
	}()

	first := commit(t, p, 1)
	waitFor(t, "replication", func() bool { return s.LastTransaction() == first })
	waitFor(t, "acknowledged", func() bool {
		st := p.Status()
		return len(st.Secondaries) == 1 && st.Secondaries[0].Acked == first
	})
	g.mu.Lock()
	g.shut = make(chan struct{})
	g.mu.Unlock()
	var last zodb.Tid
	for range 20 {
		last = bigCommit(t, p, 256<<10)
	}
	time.Sleep(300 * time.Millisecond)

	core := p.Status()
	if len(core.Secondaries) != 1 {
		t.Fatalf("secondaries %+v", core.Secondaries)
	}
	cl := core.Secondaries[0].Lag
	t.Logf("core: last %s, secondary LastSent %s Acked %s, Lag %+v", last, core.Secondaries[0].LastSent, core.Secondaries[0].Acked, cl)
	if cl.Transactions <= 0 || cl.Bytes <= 0 {
		t.Fatalf("test setup: the core does not see the lag: %+v", cl)
	}
	as := pn.Status()
	d := as.Secondaries[0]
	if d.CaughtUp || d.Acked == "" {
		t.Errorf("a zrs3 secondary that acknowledged nothing of the last 20 commits: caught_up %v, acked %q", d.CaughtUp, d.Acked)
	}
	t.Logf("/status: caught_up=%v lag_seconds=%v lag_transactions=%v lag_bytes=%v", d.CaughtUp, d.LagSeconds, d.LagTransactions, d.LagBytes)

	mfs, err := pm.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "zrs_secondary") {
			expfmt.MetricFamilyToText(&b, mf)
		}
	}
	t.Logf("metrics:\n%s", b.String())
	if d.LagTransactions == nil || d.LagBytes == nil || *d.LagTransactions != cl.Transactions || *d.LagBytes != cl.Bytes {
		show := func(p *int64) any {
			if p == nil {
				return "absent"
			}
			return *p
		}
		t.Errorf("/status lag_transactions/lag_bytes %v/%v, the primary knows %d txns, %d bytes", show(d.LagTransactions), show(d.LagBytes), cl.Transactions, cl.Bytes)
	}
	for name, want := range map[string]int64{"zrs_secondary_lag_transactions": cl.Transactions, "zrs_secondary_lag_bytes": cl.Bytes} {
		got := metricValues(b.String(), name)
		if v, err := strconv.ParseFloat(strings.Join(got, " "), 64); err != nil || v != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}
}

// metricValues returns the values of the series of the metric name in
// the text exposition format text.
func metricValues(text, name string) []string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(l, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			out = append(out, l[strings.LastIndexByte(l, ' ')+1:])
		}
	}
	return out
}

// Two secondaries replicating from one primary over its unix socket (a
// host running two local replicas, or a relay and a replica) are two
// peers: named alike, their per-peer gauges collided and the whole
// /metrics scrape failed with HTTP 500.
func TestTwoUnixSecondariesAreTwoPeers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p, pm, sock := servingPrimary(t, dir)
	pn := &admin.PrimaryNode{Primary: p, Path: "p.fs"}
	pm.SetNode(pn)
	var secs []*secondary.Secondary
	var dones []chan error
	for i := range 2 {
		s := secondary.New(openFS(t, filepath.Join(dir, "s"+string(rune('0'+i))+".fs")), sock, secondary.Options{
			Dialer:     secondary.DialFunc(func(ctx context.Context) (net.Conn, error) { return netaddr.Dial(ctx, sock) }),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		d := make(chan error, 1)
		go func() { d <- s.Run(ctx) }()
		secs, dones = append(secs, s), append(dones, d)
	}
	defer func() {
		for i, s := range secs {
			s.Close()
			<-dones[i]
		}
		p.Close()
	}()
	last := commit(t, p, 2)
	waitFor(t, "two secondaries", func() bool {
		st := p.Status()
		return len(st.Secondaries) == 2 && secs[0].LastTransaction() == last && secs[1].LastTransaction() == last
	})
	ds := pn.Status().Secondaries
	if len(ds) != 2 || ds[0].Peer == ds[1].Peer {
		t.Errorf("two secondaries on one socket: %+v, want two peer names", ds)
	}
	srv := httptest.NewServer(admin.NewServer(pn, pm, nil).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics with two secondaries on one unix socket: %s\n%s", resp.Status, body)
	}
	// The scrape goes on past a collision (promhttp.ContinueOnError),
	// dropping series: each secondary must have its own.
	if n := len(metricValues(string(body), "zrs_secondary_lag_seconds")); n != 2 {
		t.Errorf("%d zrs_secondary_lag_seconds series for two secondaries:\n%s", n, body)
	}
}

// servingPrimary serves a primary on a unix socket in dir, as the daemon
// does: counted and observed by the returned metrics.
func servingPrimary(t *testing.T, dir string) (*primary.Primary, *admin.Metrics, string) {
	t.Helper()
	pm := admin.NewMetrics()
	p := primary.New(openFS(t, filepath.Join(dir, "p.fs")), primary.Options{HeartbeatInterval: 20 * time.Millisecond})
	sock := filepath.Join(dir, "repl.sock")
	ln, err := netaddr.Listen(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddListener(pm.CountListener(ln)); err != nil {
		t.Fatal(err)
	}
	pm.ObservePrimary(p)
	go p.Serve(context.Background())
	return p, pm, sock
}

// A secondary that has nothing yet and receives nothing (here it never
// reads) lacks the primary's whole history: its lag_seconds counts from the
// primary's first transaction, so an alert on the lag fires for a new
// secondary stuck at the start, which it did not when the lag read 0.
func TestEmptySecondaryLagsFromTheFirstTransaction(t *testing.T) {
	dir := t.TempDir()
	p, pm, sock := servingPrimary(t, dir)
	pn := &admin.PrimaryNode{Primary: p, Path: "p.fs"}
	pm.SetNode(pn)
	first := commit(t, p, 1)
	time.Sleep(50 * time.Millisecond)
	last := commit(t, p, 1)

	g := &gate{shut: make(chan struct{})}
	s := secondary.New(openFS(t, filepath.Join(dir, "s.fs")), sock, secondary.Options{
		Dialer: g.dialer(sock), IdleTimeout: time.Hour, ReadTimeout: time.Hour})
	runCtx, cancelRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(runCtx) }()
	defer func() {
		close(g.shut)
		cancelRun()
		s.Close()
		<-runDone
		p.Close()
	}()
	waitFor(t, "the secondary listed", func() bool { return len(pn.Status().Secondaries) == 1 })
	d := pn.Status().Secondaries[0]
	want := last.Time().Sub(first.Time()).Seconds()
	if d.CaughtUp || d.LagSeconds < want-1e-6 || d.LagSeconds > want+1e-6 {
		t.Errorf("empty secondary: caught_up %v, lag_seconds %v; want not caught up, %v (first to last tid)", d.CaughtUp, d.LagSeconds, want)
	}
}
