package primary

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// Two secondaries on different hosts that give one node name (a machine
// cloned with its files) count once toward sync durability: the primary
// warns, naming the other. A reconnection from the same host, under the
// same name while the old connection is still open, is no twin.
func TestSharedNodeNameFromAnotherHostIsWarned(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	p := serveStorage(t, openTestFS(t), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var clock atomic.Int64 // the warnings' clock, moved by the test
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	p.twins.now = func() time.Time { return time.Unix(0, clock.Load()) }
	commit(t, p, 1)

	connect := func(from, node string) {
		t.Helper()
		before := countNode(p.Primary, node, from)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.DialContext(context.Background(), "tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := zrsproto.WriteNativeHandshake(c, 0, &zrsproto.Hello{Version: 1, Acks: true, Node: node}); err != nil {
			t.Fatal(err)
		}
		if wel, err := zrsproto.ReadWelcome(c); err != nil || wel.Refused != "" {
			t.Fatalf("welcome from %s: %v %v", from, wel, err)
		}
		for deadline := time.Now().Add(converge); countNode(p.Primary, node, from) == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no new native stream of %s from %s", node, from)
			}
		}
		// The handshake is over (the twin check with it, on the clock as
		// it is now) once the stream's "secondary connected" is logged.
		waitLog(t, logs, `msg="secondary connected" component=primary peer=`+c.LocalAddr().String()+" ")
	}
	const warning = "give the same node name"

	connect("127.0.0.1", "n1")
	connect("127.0.0.1", "n1") // a reconnection, the old connection not yet known dead
	connect("127.0.0.2", "n2") // another secondary
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("a reconnection or another node warned of as a twin:\n%s", logs)
	}
	connect("127.0.0.2", "n1") // a clone of the first
	waitLog(t, logs, warning)
	line := logLine(logs.String(), warning)
	for _, want := range []string{"level=WARN", "node=n1", "other=127.0.0.1:", "peer=127.0.0.2:"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning lacks %q: %s", want, line)
		}
	}
	// The clone reconnecting (a flapping link) is not warned of again
	// within refusalLogEvery; the next warning counts those left out.
	connect("127.0.0.2", "n1")
	connect("127.0.0.2", "n1")
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs)
	}
	clock.Add(int64(refusalLogEvery))
	connect("127.0.0.2", "n1")
	waitLog(t, logs, "warned_since_last_logged=2") // the two left out
	if n := strings.Count(logs.String(), warning); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs)
	}
}

// countNode counts p's native streams of node from host.
func countNode(p *Primary, node, host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for s := range p.streams {
		s.mu.Lock()
		if s.native != nil && s.native.node == node && remoteHost(s.conn) == host {
			n++
		}
		s.mu.Unlock()
	}
	return n
}
