package primary

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// A transaction the primary cannot send (here an extension that is not a
// pickle: damage, or a value no codec can carry) stops every secondary at
// the same place on every reconnection. The primary must say so as an
// error naming the transaction and its offset; a secondary that simply
// leaves is only news.
func TestStreamFailureIsLoggedAsError(t *testing.T) {
	st := openTestFS(t)
	logs := &testutil.SyncBuffer{}
	p := serveStorage(t, st, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	good := commit(t, p, 10)

	// A secondary that hangs up is not an error.
	c := dial(t, p.addr, []byte(zrsproto.Proto20), tidBytes(0))
	waitLog(t, logs, "secondary connected")
	c.Close()
	waitLog(t, logs, "secondary disconnected")
	if line := logLine(logs.String(), "secondary disconnected"); !strings.Contains(line, "level=INFO") {
		t.Errorf("a secondary leaving is logged as %s", line)
	}

	bad := testutil.CommitNew(t, p, zodb.TxnMeta{Extension: []byte("not a pickle")}, zodb.BeginOptions{}, []byte("data"))

	c = dial(t, p.addr, []byte(zrsproto.Proto20), tidBytes(0))
	got, _ := readAll(t, c, 0)
	if len(got) != 1 || got[0] != good {
		t.Fatalf("secondary got %v, want only %v", got, good)
	}
	waitLog(t, logs, "stream failed")
	line := logLine(logs.String(), "stream failed")
	for _, want := range []string{"level=ERROR", "tid=" + good.String(), "sending transaction " + bad.String(), "offset ", "extension"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}

}

func waitLog(t *testing.T, logs *testutil.SyncBuffer, msg string) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !strings.Contains(logs.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logLine returns the last log line containing msg.
func logLine(logs, msg string) string {
	var last string
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, msg) {
			last = l
		}
	}
	return last
}

// A secondary whose connection is reset (its host rebooted, a firewall
// dropped it) went away: no error of the primary's. The disconnection is
// logged once, as news, with the reset as its reason.
func TestResetSecondaryIsNotAnError(t *testing.T) {
	st := openTestFS(t)
	first := commit(t, st, 10)
	logs := &testutil.SyncBuffer{}
	p := serveStorage(t, st, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	db, err := p.identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reset := func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0) // close with a reset
		c.Close()
	}
	c, nr := nativeDial(t, p.Primary, p.addr, 0, db)
	if got := nextTxn(t, nr); got.Tid != first {
		t.Fatalf("got %s, want %s", got.Tid, first)
	}
	reset(c)
	waitLog(t, logs, "secondary disconnected")
	once := func(n int) {
		t.Helper()
		time.Sleep(100 * time.Millisecond) // a second line would come with the first
		if got := strings.Count(logs.String(), "secondary disconnected"); got != n {
			t.Fatalf("%d disconnections logged, want %d:\n%s", got, n, logs)
		}
	}
	once(1)
	c = dial(t, p.addr, []byte(zrsproto.Proto20), tidBytes(0))
	readAll(t, c, 1)
	reset(c)
	for deadline := time.Now().Add(converge); strings.Count(logs.String(), "secondary disconnected") < 2; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the zrs2 secondary's reset was not logged:\n%s", logs)
		}
	}
	once(2)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a reset secondary logged as an error:\n%s", logs)
	}
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "secondary disconnected") && !strings.Contains(l, "reset") && !strings.Contains(l, "EOF") {
			t.Errorf("the disconnection does not say why: %s", l)
		}
	}
}

// A connection that ends before its handshake is whole (a TCP health
// check, a port scan, a secondary that went away) is not a refusal: no
// ERROR, not counted, and INFO once per host and period (debug again in
// between); a handshake the primary judges and refuses is both.
func TestConnectionClosedInHandshakeIsNotARefusal(t *testing.T) {
	st := openTestFS(t)
	logs := &testutil.SyncBuffer{}
	p := serveStorage(t, st, Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	var refusals atomic.Int64
	p.ObserveRefusals(func() { refusals.Add(1) })
	commit(t, p, 1)

	for _, handshake := range [][]byte{nil, []byte(zrsproto.Proto3)} {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		if handshake != nil {
			zrsproto.WriteFrame(c, handshake)
		}
		c.Close()
	}
	waitLog(t, logs, "connection ended before its handshake was complete")
	for deadline := time.Now().Add(converge); strings.Count(logs.String(), "connection ended before its handshake") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("two closed handshakes, log:\n%s", logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "level=ERROR") || refusals.Load() != 0 ||
		strings.Count(logs.String(), `level=INFO msg="connection ended before its handshake was complete"`) != 1 ||
		strings.Count(logs.String(), `level=DEBUG msg="connection ended before its handshake was complete again"`) != 1 {
		t.Fatalf("closed handshakes: %d refusals counted; want one INFO line, then debug; log:\n%s", refusals.Load(), logs)
	}

	// A zrs2 secondary ahead of the primary is refused.
	c := dial(t, p.addr, []byte(zrsproto.Proto20), tidBytes(zodb.MaxTid-1))
	io.Copy(io.Discard, c)
	waitLog(t, logs, "refusing secondary")
	if line := logLine(logs.String(), "refusing secondary"); !strings.Contains(line, "level=ERROR") || refusals.Load() != 1 {
		t.Fatalf("a refusal: %d counted, logged %s", refusals.Load(), line)
	}
}
