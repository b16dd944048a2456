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

// When a zrs3 secondary cannot write its acknowledgement, the cycle's
// error (the log's "lost connection to primary" and /status last_error)
// says so, not "context canceled".
func TestAckWriteFailureIsNamed(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(5)
	var armed atomic.Bool
	var n atomic.Int32
	dial := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil || n.Add(1) > 1 {
			return c, err
		}
		return failWrites{c, &armed}, nil
	})
	s := startSecondary(t, filepath.Join(dir, "s.fs"), p.addr, secondary.Options{Dialer: dial})
	waitCaughtUp(t, p, s)
	armed.Store(true)
	w.run(1) // its acknowledgement cannot be written
	waitFor(t, "an error", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "sending an acknowledgement to the primary") || !strings.Contains(e, errWriteInjected.Error()) {
		t.Fatalf("last_error after the acknowledgement write failed: %q", e)
	}
}
