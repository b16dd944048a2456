package admin

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/zrs-replication/zrs/core/secondary"
)

// countingConn adds what passes through a connection to two counters.
type countingConn struct {
	net.Conn
	read, written *atomic.Int64
}

// CloseWrite half-closes the connection when the wrapped one can: a
// primary ends a stream that way, so that the secondary reads everything
// before the connection goes (core/primary).
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn returns the wrapped connection, for settings on the socket
// itself (netaddr.SetSendTimeout).
func (c *countingConn) NetConn() net.Conn { return c.Conn }

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

// countingListener counts the bytes of every accepted connection.
type countingListener struct {
	net.Listener
	m *Metrics
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, read: &l.m.downRead, written: &l.m.downWritten}, nil
}

// CountListener wraps a primary's listener so that the bytes exchanged
// with secondaries show in the metrics.
func (m *Metrics) CountListener(ln net.Listener) net.Listener {
	return &countingListener{Listener: ln, m: m}
}

// CountDialer wraps a secondary's dialer so that the bytes exchanged with
// the primary and the connections made show in the metrics.
func (m *Metrics) CountDialer(d secondary.Dialer) secondary.Dialer {
	return secondary.DialFunc(func(ctx context.Context) (net.Conn, error) {
		c, err := d.Dial(ctx)
		if err != nil {
			return nil, err
		}
		m.connects.Inc()
		return &countingConn{Conn: c, read: &m.upRead, written: &m.upWritten}, nil
	})
}
