package netaddr

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSendTimeout is the send timeout a ZEO server sets when it is
// given none: see SetSendTimeout.
const DefaultSendTimeout = 60 * time.Second

// SetSendTimeout bounds how long data written to c may stay unacknowledged
// by the peer's host (and, with TCP keep-alive, how long keep-alive probes
// may go unanswered) before the kernel drops the connection and the
// pending write fails. This is TCP_USER_TIMEOUT.
//
// It is what ends a connection to a peer that vanished without a word — a
// host that lost power, a cable pulled, a firewall that forgot the
// connection: without it a writer blocks for the kernel's retransmission
// limit, about 15 minutes on Linux, and meanwhile the server shows the peer
// as connected. The price: since Linux 5.11 a live peer that reads nothing
// for that long (its window stays shut) is dropped too, where without the
// option the kernel keeps probing it for ever. Set it only where a peer
// that stops reading that long is broken anyway.
//
// c may wrap the TCP connection (a TLS connection, a counting wrapper) if
// the wrapper has a NetConn method. Connections that are not TCP (Unix
// sockets, in-memory pipes) are left alone: a Unix peer's host is ours.
// d <= 0 leaves the kernel's default.
func SetSendTimeout(c net.Conn, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("set send timeout: %w", err)
	}
	ms := int(min(d.Milliseconds(), int64(1<<31-1)))
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
	}); err != nil {
		serr = errors.Join(serr, err)
	}
	if serr != nil {
		return fmt.Errorf("set send timeout (TCP_USER_TIMEOUT) on %s: %w", c.RemoteAddr(), serr)
	}
	return nil
}
