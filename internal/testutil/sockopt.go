package testutil

import (
	"net"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RecordingListener remembers every connection it accepts, as the
// listener gave it, before any wrapper a server puts around it.
type RecordingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Accept accepts and records.
func (l *RecordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// Conns returns the connections accepted so far.
func (l *RecordingListener) Conns() []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]net.Conn(nil), l.conns...)
}

// UserTimeout returns the TCP_USER_TIMEOUT of a TCP connection, in ms.
func UserTimeout(t testing.TB, c net.Conn) int {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("%T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}
