package secondary_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zrs-replication/zrs/core/secondary"
)

// failWrites is a connection whose writes fail once armed (the path back
// to the primary broke).
type failWrites struct {
	net.Conn
	armed *atomic.Bool
}

var errWriteInjected = errors.New("injected write failure")

func (c failWrites) Write(b []byte) (int, error) {
	if c.armed.Load() {
		return 0, errWriteInjected
	}
	return c.Conn.Write(b)
}

// wrapFirstDial returns a dialer of the TCP address addr that gives the
// first connection it makes to wrap, and the count of connections made.
func wrapFirstDial(addr string, wrap func(net.Conn) net.Conn) (secondary.DialFunc, *atomic.Int32) {
	n := new(atomic.Int32)
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || n.Add(1) > 1 {
			return c, err
		}
		return wrap(c), nil
	}, n
}

// When a zrs3 secondary cannot write its acknowledgement, the cycle's
// error (the log's "lost connection to primary" and /status last_error)
// says so, not "context canceled".
func TestAckWriteFailureIsNamed(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(5)
	var armed atomic.Bool
	dial, _ := wrapFirstDial(p.addr, func(c net.Conn) net.Conn { return failWrites{c, &armed} })
	s := startSecondary(t, filepath.Join(dir, "s.fs"), p.addr, secondary.Options{Dialer: dial})
	waitCaughtUp(t, p, s)
	armed.Store(true)
	w.run(1) // its acknowledgement cannot be written
	waitFor(t, "an error", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "sending an acknowledgement to the primary") || !strings.Contains(e, errWriteInjected.Error()) {
		t.Fatalf("last_error after the acknowledgement write failed: %q", e)
	}
}
