package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

// fakeNode is an admin.Node whose status the test sets, and can make
// block (a stuck node).
type fakeNode struct {
	mu      sync.Mutex
	st      admin.Status
	stuck   chan struct{} // while not nil, Status waits for it to close
	statusN int
}

func (f *fakeNode) Status() admin.Status {
	f.mu.Lock()
	stuck := f.stuck
	f.statusN++
	f.mu.Unlock()
	if stuck != nil {
		<-stuck
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeNode) Promote(context.Context) error { return nil }

func (f *fakeNode) set(st admin.Status) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

// notifyHere points NOTIFY_SOCKET at a socket of the test's.
func notifyHere(t *testing.T) *notifySocket {
	t.Helper()
	n := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("NOTIFY_SOCKET", n.path)
	return n
}

// count is the number of messages so far equal to msg.
func (n *notifySocket) count(msg string) int {
	k := 0
	for _, m := range n.all() {
		if m == msg {
			k++
		}
	}
	return k
}

// waitCount waits until at least k messages satisfy match.
func (n *notifySocket) waitCount(t *testing.T, k int, what string, match func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := 0
		for _, m := range n.all() {
			if match(m) {
				got++
			}
		}
		if got >= k {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %s on NOTIFY_SOCKET: %q", got, k, what, n.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testSupervisor(an admin.Node) *supervisor {
	quiet := slog.New(slog.DiscardHandler)
	return &supervisor{name: "main", node: &node{status: an}, notify: newNotifier(quiet), log: quiet}
}

// runSupervisor runs s until the test ends or the returned stop is
// called; stopNode is what it calls after STOPPING=1.
func runSupervisor(t *testing.T, s *supervisor, stopNode func()) (stop func()) {
	t.Helper()
	sig, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		s.run(sig, done, stopNode)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-ended
		})
	}
	t.Cleanup(stop)
	return stop
}

// STOPPING=1 reaches systemd before the node starts to stop (a drain
// may take a minute: systemd must know it is one, not a hang).
func TestSupervisorSaysStoppingBeforeStopping(t *testing.T) {
	n := notifyHere(t)
	f := &fakeNode{st: admin.Status{Role: admin.RolePrimary, LastTid: "0000000000000000"}}
	seen := make(chan bool, 1)
	stop := runSupervisor(t, testSupervisor(f), func() {
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			for _, m := range n.all() {
				if strings.HasPrefix(m, "STOPPING=1\n") {
					seen <- true
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		seen <- false
	})
	n.waitCount(t, 1, "READY=1", func(m string) bool { return m == "READY=1" })
	stop()
	if !<-seen {
		t.Fatalf("the node was stopped before STOPPING=1 was sent: %q", n.all())
	}
}

// The watchdog is pinged at half of WATCHDOG_USEC for as long as the
// node's status can be computed, and no longer once it cannot (a stuck
// node): systemd then restarts it.
func TestSupervisorWatchdogFollowsTheNode(t *testing.T) {
	defer func(d time.Duration) { statusInterval = d }(statusInterval)
	statusInterval = time.Hour // only the pings ask the node
	n := notifyHere(t)
	t.Setenv("WATCHDOG_USEC", "100000") // a ping every 50 ms
	f := &fakeNode{st: admin.Status{Role: admin.RolePrimary, LastTid: "0000000000000000"}}
	runSupervisor(t, testSupervisor(f), func() {})
	n.waitCount(t, 5, "WATCHDOG=1", func(m string) bool { return m == "WATCHDOG=1" })

	stuck := make(chan struct{})
	f.mu.Lock()
	f.stuck = stuck
	before := f.statusN
	f.mu.Unlock()
	defer close(stuck)
	// The next ping asks the stuck node first, and none may follow.
	deadline := time.Now().Add(5 * time.Second) // 100 ping intervals
	for {
		f.mu.Lock()
		asked := f.statusN > before
		f.mu.Unlock()
		if asked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ping asked the node for its status")
		}
		time.Sleep(time.Millisecond)
	}
	pings := n.count("WATCHDOG=1")
	time.Sleep(300 * time.Millisecond) // six ping intervals
	if more := n.count("WATCHDOG=1") - pings; more > 0 {
		t.Fatalf("%d watchdog pings while the node could not give its status", more)
	}
}

// STATUS is sent again only when it changed.
func TestSupervisorSendsStatusOnChange(t *testing.T) {
	defer func(d time.Duration) { statusInterval = d }(statusInterval)
	statusInterval = 10 * time.Millisecond
	n := notifyHere(t)
	f := &fakeNode{st: admin.Status{Role: admin.RolePrimary, LastTid: "00000000000000aa"}}
	isStatus := func(m string) bool { return strings.HasPrefix(m, "STATUS=") }
	runSupervisor(t, testSupervisor(f), func() {})
	n.waitCount(t, 1, "STATUS", isStatus)
	time.Sleep(100 * time.Millisecond) // ten recomputations
	f.set(admin.Status{Role: admin.RolePrimary, LastTid: "00000000000000bb"})
	n.waitCount(t, 2, "STATUS", isStatus)
	time.Sleep(100 * time.Millisecond)
	var got []string
	for _, m := range n.all() {
		if isStatus(m) {
			got = append(got, m)
		}
	}
	want := []string{"STATUS=main: primary, last tid 00000000000000aa", "STATUS=main: primary, last tid 00000000000000bb"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("STATUS messages %q, want %q", got, want)
	}
}

// The one-line STATUS of each kind of node and state.
func TestSupervisorStatusLine(t *testing.T) {
	const tid = "040d41871fb67dcc"
	for _, c := range []struct {
		st   admin.Status
		want string
	}{
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, Serving: true},
			"main: primary, last tid " + tid + ", 0 secondaries"},
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, Serving: true,
			Secondaries: []admin.Downstream{{LagSeconds: 0.25}, {LagSeconds: 1.5}}},
			"main: primary, last tid " + tid + ", 2 secondaries (max lag 1.5s)"},
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, Serving: true, Secondaries: []admin.Downstream{{}}},
			"main: primary, last tid " + tid + ", 1 secondary"},
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, PromotedAt: time.Unix(1, 0)},
			"main: primary (promoted), last tid " + tid},
		{admin.Status{Role: admin.RoleSecondary, LastTid: tid, Upstream: &admin.Upstream{Address: "p:8100"}},
			"main: secondary, last tid " + tid + ", connecting to p:8100"},
		{admin.Status{Role: admin.RoleSecondary, LastTid: tid, Upstream: &admin.Upstream{Address: "p:8100", LastError: "refused"}},
			"main: secondary, last tid " + tid + ", disconnected: refused"},
		{admin.Status{Role: admin.RoleSecondary, LastTid: tid, Upstream: &admin.Upstream{Address: "p:8100", Connected: true}},
			"main: secondary, last tid " + tid + ", connected, catching up"},
		{admin.Status{Role: admin.RoleSecondary, LastTid: tid, Upstream: &admin.Upstream{Address: "p:8100", Connected: true, CaughtUp: true}},
			"main: secondary, last tid " + tid + ", connected, caught up"},
		{admin.Status{Role: admin.RoleSecondary, LastTid: tid, Upstream: &admin.Upstream{Address: "p:8100", Connected: true, Promoting: true, LastError: "a promotion did not finish"}},
			"main: secondary, last tid " + tid + ", promotion not finished, read-only: run zrs promote again"},
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, FsyncRunning: 42.4},
			"main: primary, last tid " + tid + ", STALLED: the storage's fsync has not returned for 42s: the disk is not answering, commits wait"},
		{admin.Status{Role: admin.RolePrimary, LastTid: tid, FsyncRunning: 4.9},
			"main: primary, last tid " + tid},
	} {
		if got := testSupervisor(&fakeNode{st: c.st}).status(); got != c.want {
			t.Errorf("status %q, want %q", got, c.want)
		}
	}
}

// While the storage opens, systemd's start timeout is extended every
// startExtendEvery, and no more once it is open.
func TestStartTimeoutExtendedWhileOpening(t *testing.T) {
	defer func(d time.Duration) { startExtendEvery = d }(startExtendEvery)
	startExtendEvery = 10 * time.Millisecond
	n := notifyHere(t)
	isExtend := func(m string) bool { return strings.HasPrefix(m, "EXTEND_TIMEOUT_USEC=60000000\n") }
	opened := extendStartWhileOpening(context.Background(), newNotifier(slog.New(slog.DiscardHandler)), "main")
	n.waitCount(t, 4, "EXTEND_TIMEOUT_USEC", isExtend)
	opened()
	time.Sleep(20 * time.Millisecond) // one in flight may still land
	k := len(n.all())
	time.Sleep(100 * time.Millisecond)
	if more := len(n.all()) - k; more > 0 {
		t.Fatalf("%d more extensions after the storage opened: %q", more, n.all())
	}
}

// A stop during the open ends the extensions (each would push back the
// stop timeout too) and says what the daemon waits for.
func TestStartExtensionsEndWithAStop(t *testing.T) {
	defer func(d time.Duration) { startExtendEvery = d }(startExtendEvery)
	startExtendEvery = 10 * time.Millisecond
	n := notifyHere(t)
	isExtend := func(m string) bool { return strings.HasPrefix(m, "EXTEND_TIMEOUT_USEC=") }
	ctx, cancel := context.WithCancel(context.Background())
	opened := extendStartWhileOpening(ctx, newNotifier(slog.New(slog.DiscardHandler)), "main")
	defer opened()
	n.waitCount(t, 2, "EXTEND_TIMEOUT_USEC", isExtend)
	cancel()
	n.waitCount(t, 1, "the stopping STATUS", func(m string) bool {
		return m == "STATUS=main: stopping once the storage's open returns (it cannot be cut short; TimeoutStopSec bounds the wait)"
	})
	k := len(n.all())
	time.Sleep(100 * time.Millisecond)
	if more := n.all()[k:]; len(more) > 0 {
		t.Fatalf("messages after the stop: %q", more)
	}
}
