package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/netaddr"
	"github.com/zrs-replication/zrs/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
)

// pair is a primary and a secondary replicating over a unix socket, each
// with its metrics, as the daemons wire them.
type pair struct {
	p    *primary.Primary
	s    *secondary.Secondary
	pm   *admin.Metrics
	sm   *admin.Metrics
	pn   *admin.PrimaryNode
	sn   *admin.SecondaryNode
	sock string // the primary's replication socket
	stop func()
}

func openFS(t *testing.T, path string) *fs.FileStorage {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func startPair(t *testing.T) *pair {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	pr := &pair{pm: admin.NewMetrics(), sm: admin.NewMetrics()}
	pr.p = primary.New(openFS(t, filepath.Join(dir, "p.fs")), primary.Options{HeartbeatInterval: 20 * time.Millisecond})
	sock := filepath.Join(dir, "repl.sock")
	ln, err := netaddr.Listen(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.p.AddListener(pr.pm.CountListener(ln)); err != nil {
		t.Fatal(err)
	}
	pr.pm.ObservePrimary(pr.p)
	go pr.p.Serve(ctx)
	dialer := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) { return netaddr.Dial(ctx, sock) })
	pr.s = secondary.New(openFS(t, filepath.Join(dir, "s.fs")), sock, secondary.Options{
		Dialer: pr.sm.CountDialer(dialer), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	pr.sm.ObserveSecondary(pr.s, true)
	runDone := make(chan error, 1)
	go func() { runDone <- pr.s.Run(ctx) }()
	pr.pn = &admin.PrimaryNode{Primary: pr.p, Path: "p.fs"}
	pr.sock = sock
	pr.sn = &admin.SecondaryNode{Secondary: pr.s, Path: "s.fs"}
	pr.pm.SetNode(pr.pn)
	pr.sm.SetNode(pr.sn)
	pr.stop = func() {
		pr.s.Close()
		<-runDone
		pr.p.Close()
	}
	t.Cleanup(pr.stop)
	return pr
}

func commit(t *testing.T, st zodb.Storage, n int) zodb.Tid {
	t.Helper()
	var tid zodb.Tid
	for range n {
		tid = testutil.CommitNew(t, st, zodb.TxnMeta{Description: []byte("admin test")}, zodb.BeginOptions{}, []byte("data"))
	}
	return tid
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// Status and metrics of a replicating pair, over httptest.
func TestStatusAndMetrics(t *testing.T) {
	pr := startPair(t)
	last := commit(t, pr.p, 5)
	waitFor(t, "replication", func() bool { return pr.s.LastTransaction() == last })
	// The caught-up indicator comes from the protocol's read loop (for
	// zrs3, the next heartbeat).
	waitFor(t, "caught_up", func() bool { return pr.sn.Status().Upstream.CaughtUp })

	psrv := httptest.NewServer(admin.NewServer(pr.pn, pr.pm, nil).Handler())
	defer psrv.Close()
	ssrv := httptest.NewServer(admin.NewServer(pr.sn, pr.sm, nil).Handler())
	defer ssrv.Close()

	var ps admin.Status
	if err := json.Unmarshal([]byte(get(t, psrv.URL+"/status")), &ps); err != nil {
		t.Fatal(err)
	}
	if ps.Role != "primary" || ps.LastTid != last.Hex() || !ps.Serving || len(ps.Secondaries) != 1 ||
		!ps.Secondaries[0].CaughtUp || ps.Secondaries[0].LastSent != last.Hex() || ps.LastTidTime.IsZero() {
		t.Errorf("primary status %+v", ps)
	}
	var ss admin.Status
	if err := json.Unmarshal([]byte(get(t, ssrv.URL+"/status")), &ss); err != nil {
		t.Fatal(err)
	}
	if ss.Role != "secondary" || ss.LastTid != last.Hex() || ss.Upstream == nil || !ss.Upstream.Connected || !ss.Upstream.CaughtUp {
		t.Errorf("secondary status %+v %+v", ss, ss.Upstream)
	}
	// A node that serves secondaries lists them, [] when it has none
	// (scripts index the key); one that does not, leaves it out.
	if raw := get(t, ssrv.URL+"/status"); strings.Contains(raw, `"secondaries"`) {
		t.Errorf("a secondary without a relay lists secondaries: %s", raw)
	}

	// A secondary with a handshake the primary refuses is counted.
	c, err := netaddr.Dial(context.Background(), pr.sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\x00\x00\x00\x06zrs9.9"))
	io.Copy(io.Discard, c) // until the primary closes it
	c.Close()
	waitFor(t, "the refusal counted", func() bool {
		return strings.Contains(get(t, psrv.URL+"/metrics"), "zrs_replication_refusals_total 1\n")
	})
	pmet := get(t, psrv.URL+"/metrics")
	for _, want := range []string{
		`zrs_role{role="primary"} 1`, `zrs_secondaries_connected 1`, `zrs_commits_total{result="ok"} 5`,
		`zrs_commit_duration_seconds_count 5`, `zrs_secondary_lag_seconds{peer=`, `zrs_last_transaction_timestamp_seconds `,
		`zrs_last_tid `, `zrs_replication_sent_bytes_total `, `zrs_replication_internal_errors_total 0`,
	} {
		if !strings.Contains(pmet, want) {
			t.Errorf("primary metrics lack %q", want)
		}
	}
	if strings.Contains(pmet, "zrs_replication_sent_bytes_total 0\n") {
		t.Error("no bytes counted as sent")
	}
	// Each way is counted as its own: a primary sends its transactions
	// and receives the little a secondary says (handshake, acknowledgements).
	value := func(text, name string) float64 {
		t.Helper()
		got := metricValues(text, name)
		v, err := strconv.ParseFloat(strings.Join(got, " "), 64)
		if err != nil {
			t.Fatalf("%s: %v (%v)", name, got, err)
		}
		return v
	}
	if sent, got := value(pmet, "zrs_replication_sent_bytes_total"), value(pmet, "zrs_replication_secondary_received_bytes_total"); !(sent > got && got > 0) {
		t.Errorf("primary: %v bytes counted as sent to secondaries, %v as received from them", sent, got)
	}
	smet := get(t, ssrv.URL+"/metrics")
	for _, want := range []string{
		`zrs_role{role="secondary"} 1`, `zrs_apply_duration_seconds_count 5`, `zrs_upstream_connected 1`,
		`zrs_upstream_caught_up 1`, `zrs_upstream_connects_total 1`, `zrs_upstream_internal_errors_total 0`,
	} {
		if !strings.Contains(smet, want) {
			t.Errorf("secondary metrics lack %q", want)
		}
	}
	if got, sent := value(smet, "zrs_replication_received_bytes_total"), value(smet, "zrs_replication_primary_sent_bytes_total"); !(got > sent && sent > 0) {
		t.Errorf("secondary: %v bytes counted as received from the primary, %v as sent to it", got, sent)
	}
	// Promotion of a primary is refused with 409.
	resp, err := http.Post(psrv.URL+"/promote", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("promote a primary: %s, want 409", resp.Status)
	}
	pr.s.Close()
	waitFor(t, "the secondary to go", func() bool { return len(pr.p.Status().Secondaries) == 0 })
	var doc map[string]any
	if err := json.Unmarshal([]byte(get(t, psrv.URL+"/status")), &doc); err != nil {
		t.Fatal(err)
	}
	if l, ok := doc["secondaries"].([]any); !ok || len(l) != 0 {
		t.Errorf("a primary without secondaries: secondaries = %#v, want []", doc["secondaries"])
	}
}

// The client over a unix socket: status, promotion of a secondary, and
// the refusal to promote a primary.
func TestClientOverUnixSocket(t *testing.T) {
	pr := startPair(t)
	last := commit(t, pr.p, 3)
	waitFor(t, "replication", func() bool { return pr.s.LastTransaction() == last })
	dir := t.TempDir()
	ctx := context.Background()
	serve := func(n admin.Node, m *admin.Metrics, name string) *admin.Client {
		srv := admin.NewServer(n, m, nil)
		addr := filepath.Join(dir, name)
		if _, err := srv.Listen(ctx, addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(ctx) })
		c, err := admin.NewClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pc := serve(pr.pn, pr.pm, "p.admin")
	sc := serve(pr.sn, pr.sm, "s.admin")
	// Operators in the daemon's group can connect, whatever the umask
	// (a unit's 0027 would make it 0750); others cannot.
	old := syscall.Umask(0o077)
	serve(pr.pn, pr.pm, "umask.admin")
	syscall.Umask(old)
	if fi, err := os.Stat(filepath.Join(dir, "umask.admin")); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("admin socket mode %v (%v), want 0660", fi.Mode().Perm(), err)
	}

	st, raw, err := sc.Status(ctx)
	if err != nil || st.Role != "secondary" || st.LastTid != last.Hex() || !json.Valid(raw) {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, err := pc.Promote(ctx); !errors.Is(err, admin.ErrNotSecondary) {
		t.Fatalf("promote a primary: %v, want ErrNotSecondary", err)
	}
	res, err := sc.Promote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Role != "primary" || res.LastTid != last.Hex() || res.PromotedAt.IsZero() || res.Upstream != nil {
		t.Fatalf("after promote: %+v", res)
	}
	t.Logf("promotion over HTTP took %.3f ms", res.TookSeconds*1000)
	if _, err := sc.Promote(ctx); err != nil {
		t.Fatalf("second promotion: %v", err)
	}
	// The promoted node is writable.
	tid := commit(t, pr.s, 1)
	st, _, err = sc.Status(ctx)
	if err != nil || st.Role != "primary" || st.LastTid != tid.Hex() {
		t.Fatalf("status after a commit on the promoted node: %+v %v", st, err)
	}
}

// A counted connection half-closes like the one it wraps: a primary ends
// a stream with CloseWrite so that the secondary reads everything, then
// waits for the secondary to close.
func TestCountedConnHalfCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := admin.NewMetrics().CountListener(ln)
	defer cl.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("a counted connection has no CloseWrite")
	}
	if _, err := c.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	peer.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(peer); err != nil || string(got) != "tail" {
		t.Fatalf("the peer read %q, %v; want the tail, then EOF", got, err)
	}
	if _, err := peer.Write([]byte("ack")); err != nil { // the other way still open
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ack" {
		t.Fatalf("read after the half-close: %q, %v", buf, err)
	}
}

// A client that sends requests and never reads the answers must not keep
// a handler, and its connection, past Shutdown's deadline: the daemon
// waits for the admin endpoint before it stops the primary's streams.
func TestShutdownEndsClientThatNeverReads(t *testing.T) {
	pr := startPair(t)
	srv := admin.NewServer(pr.pn, pr.pm, nil)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	if _, err := srv.Listen(context.Background(), sock); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writerDone := make(chan error, 1)
	go func() {
		req := []byte("GET /status HTTP/1.1\r\nHost: zrs\r\n\r\n")
		for {
			if _, err := c.Write(req); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the socket buffers fill both ways
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	srv.Shutdown(ctx)
	select {
	case <-writerDone: // the server closed the connection
	case <-time.After(10 * time.Second):
		t.Fatal("10 s after Shutdown the server still holds the connection of a client that never reads")
	}
}

// The admin endpoint warns when it listens beyond this host (it has no
// authentication), and a promotion refused to a primary — an operator's
// mistake — is a warning in the primary's log, not an error.
func TestAdminLogs(t *testing.T) {
	pr := startPair(t)
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for addr, warn := range map[string]bool{"127.0.0.1:0": false, "0.0.0.0:0": true} {
		logs.Reset()
		srv := admin.NewServer(pr.pn, nil, log)
		a, err := srv.Listen(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "no authentication"); got != warn {
			t.Errorf("listening on %s: warning %v, want %v:\n%s", addr, got, warn, logs.String())
		}
		if addr == "127.0.0.1:0" {
			resp, err := http.Post("http://"+a.String()+"/promote", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if l := logs.String(); resp.StatusCode != http.StatusConflict || !strings.Contains(l, "level=WARN msg=\"promotion refused") || strings.Contains(l, "level=ERROR") {
				t.Errorf("promote a primary: %s, log:\n%s", resp.Status, l)
			}
		}
		srv.Shutdown(context.Background())
	}
}

// failingCollector gathers two series with one label set, as two peers
// named alike once did.
type failingCollector struct{}

var failingDesc = prometheus.NewDesc("zrs_test_failing", "a series that fails", []string{"peer"}, nil)

func (failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- failingDesc }
func (failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, 1, "same")
	ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, 2, "same")
}

// A series that cannot be gathered is left out of the scrape, which
// serves the rest, and logged: not silently lost, nor once per scrape.
func TestMetricsServeTheRestAndLogAFailure(t *testing.T) {
	m := admin.NewMetrics()
	m.Registry().MustRegister(failingCollector{})
	var logs testutil.SyncBuffer
	srv := httptest.NewServer(admin.NewServer(&countingNode{}, m, slog.New(slog.NewTextHandler(&logs, nil))).Handler())
	defer srv.Close()
	if _, err := http.Get(srv.URL + "/metrics"); err != nil { // a first scrape: logged
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/metrics") // the same failure again: not logged again
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("scrape with one failing series: %s, the rest served: %v", resp.Status, strings.Contains(string(body), "go_goroutines"))
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "zrs_test_failing") {
		t.Errorf("the failing series is not in the log: %q", l)
	} else if n := strings.Count(l, "level=ERROR"); n != 1 {
		t.Errorf("a series failing on every scrape logged %d lines for 2 scrapes, want 1 a minute:\n%s", n, l)
	}
}

// stuckSync is a storage whose commit fsync has been running for d.
type stuckSync time.Duration

func (s stuckSync) SyncRunning() time.Duration { return time.Duration(s) }

// A commit fsync that does not return shows in /status and in a gauge,
// on a primary and on a secondary; none running is absent / 0.
func TestStatusShowsARunningFsync(t *testing.T) {
	pr := startPair(t)
	for _, c := range []struct {
		name string
		set  func(admin.SyncReporter)
		node admin.Node
		m    *admin.Metrics
	}{
		{"primary", func(r admin.SyncReporter) { pr.pn.Storage = r }, pr.pn, pr.pm},
		{"secondary", func(r admin.SyncReporter) { pr.sn.Storage = r }, pr.sn, pr.sm},
	} {
		srv := httptest.NewServer(admin.NewServer(c.node, c.m, nil).Handler())
		c.set(stuckSync(0))
		if raw := get(t, srv.URL+"/status"); strings.Contains(raw, "fsync_running") {
			t.Errorf("%s: no fsync running, yet %s", c.name, raw)
		}
		if got := metricValues(get(t, srv.URL+"/metrics"), "zrs_storage_fsync_running_seconds"); len(got) != 1 || got[0] != "0" {
			t.Errorf("%s: gauge with no fsync running: %v", c.name, got)
		}
		c.set(stuckSync(42 * time.Second))
		var st admin.Status
		if err := json.Unmarshal([]byte(get(t, srv.URL+"/status")), &st); err != nil {
			t.Fatal(err)
		}
		if d, stalled := st.Stalled(); st.FsyncRunning != 42 || !stalled || d != 42*time.Second {
			t.Errorf("%s: status %v (stalled %v, %v)", c.name, st.FsyncRunning, stalled, d)
		}
		if got := metricValues(get(t, srv.URL+"/metrics"), "zrs_storage_fsync_running_seconds"); len(got) != 1 || got[0] != "42" {
			t.Errorf("%s: gauge: %v", c.name, got)
		}
		c.set(stuckSync(admin.StalledAfter - time.Millisecond))
		if st := c.node.Status(); st.FsyncRunning == 0 {
			t.Errorf("%s: a running fsync not reported", c.name)
		} else if _, stalled := st.Stalled(); stalled {
			t.Errorf("%s: %v s called stalled", c.name, st.FsyncRunning)
		}
		srv.Close()
	}
}
