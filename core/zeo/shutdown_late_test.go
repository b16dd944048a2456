package zeo

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
)

// lateListener hands out the first connection it accepts only once it is
// closed: a connection Accept returned just before Shutdown closed the
// listener, whose session the accept loop registers just after.
type lateListener struct {
	net.Listener
	closeOnce, first sync.Once
	closing          chan struct{}
}

func (l *lateListener) Accept() (net.Conn, error) {
	var c net.Conn
	err := net.ErrClosed
	l.first.Do(func() {
		if c, err = l.Listener.Accept(); err == nil {
			<-l.closing
		}
	})
	if c == nil {
		<-l.closing
	}
	return c, err
}

func (l *lateListener) Close() error {
	l.closeOnce.Do(func() { close(l.closing) })
	return l.Listener.Close()
}

// A connection accepted as Shutdown begins (its session would join after
// Shutdown took the sessions it ends) is refused like one a moment later:
// Shutdown, waiting for a transaction in progress, ends when that
// transaction ends, not at the end of its grace period for the idle
// latecomer.
func TestShutdownRefusesConnectionAcceptedAsItBegins(t *testing.T) {
	srv, addr, _ := newTestServer(t, Options{})
	busy := dialRegistered(t, addr)
	oid := busy.newOid()
	busy.begin(1)
	busy.oneWay("storea", oidValue(oid), tidValue(0), pyval.Bytes([]byte("in flight")), pyval.Int(1))
	waitUntil(t, "the transaction to be active", func() bool { return srv.stats.active.Load() == 1 })

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &lateListener{Listener: inner, closing: make(chan struct{})}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	lateErr := make(chan error, 1)
	go func() {
		// The server speaks first, once a session runs for the connection.
		c, err := dialTestErr(inner.Addr(), nil)
		if err == nil {
			c.conn.Close()
		}
		lateErr <- err
	}()
	// The late connection is accepted and held by the listener.
	time.Sleep(100 * time.Millisecond)
	const grace = 20 * time.Second
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	if err := <-lateErr; err == nil {
		t.Error("the connection accepted as Shutdown began was served")
	}
	if v := busy.call("vote", pyval.Int(1)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	busy.finish(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > grace/2 {
		t.Errorf("Shutdown took %v: it waited for a connection accepted as it began", took.Round(time.Millisecond))
	}
}
