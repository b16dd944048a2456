package primary

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8100} }

// A secondary refused again and again (a diverged one retries for ever)
// is an error once per refusalLogEvery, per host and reason, and the next
// error says how many refusals it did not show.
func TestRefusalsAreLoggedOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := refusalLog{now: func() time.Time { return now }}
	from := func(ip string, port int) net.Conn {
		return addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}}
	}
	diverged, other := errors.New("history diverged at 03e1"), errors.New("another database")
	step := func(c net.Conn, err error, want string) {
		t.Helper()
		buf.Reset()
		r.refused(log, c, err)
		if got := buf.String(); !strings.Contains(got, want) {
			t.Fatalf("at %s, refusing %s for %q logged %q; want %q", now.Format(time.TimeOnly), c.RemoteAddr(), err, got, want)
		}
	}
	step(from("10.0.0.1", 40000), diverged, `level=ERROR msg="refusing secondary" err="history diverged at 03e1"`+"\n")
	now = now.Add(30 * time.Second)
	step(from("10.0.0.1", 40001), diverged, `level=DEBUG msg="refusing secondary again"`)
	step(from("10.0.0.2", 40000), diverged, `level=ERROR`)
	step(from("10.0.0.1", 40002), other, `level=ERROR`)
	now = now.Add(30 * time.Second)
	step(from("10.0.0.1", 40003), diverged, `level=DEBUG`)
	now = now.Add(refusalLogEvery)
	step(from("10.0.0.1", 40004), diverged, `level=ERROR msg="refusing secondary" err="history diverged at 03e1" refused_since_last_logged=2`)
	// A host that stopped trying is forgotten: its next refusal is news.
	now = now.Add(3 * refusalLogEvery)
	step(from("10.0.0.1", 40005), diverged, `err="history diverged at 03e1"`+"\n")
	if len(r.seen) != 1 {
		t.Fatalf("%d refusals remembered, want 1: %v", len(r.seen), r.seen)
	}
}
