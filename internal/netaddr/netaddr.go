package netaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Networks an Addr can name.
const (
	TCP  = "tcp"
	Unix = "unix"
)

// Addr is a parsed replication address.
type Addr struct {
	Network string // TCP or Unix
	// Host is the TCP host, "" when only a port was given; the socket path
	// for Unix.
	Host string
	Port int // TCP port, 0 for Unix
}

// Parse parses a port, "host:port", or a Unix socket path (anything
// containing "/"). Errors name the address and what is wrong with it.
func Parse(s string) (Addr, error) {
	switch {
	case s == "":
		return Addr{}, errors.New("empty address: want a port, host:port, or a socket path containing '/'")
	case strings.Contains(s, "/"):
		return Addr{Network: Unix, Host: s}, nil
	case !strings.Contains(s, ":"):
		p, err := parsePort(s)
		if err != nil {
			return Addr{}, fmt.Errorf("address %q: %w", s, err)
		}
		return Addr{Network: TCP, Port: p}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("address %q: want a port, host:port, or a socket path containing '/': %w", s, err)
	}
	p, err := parsePort(port)
	if err != nil {
		return Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return Addr{Network: TCP, Host: host, Port: p}, nil
}

// parsePort accepts a decimal port 0..65535 (0 asks the system for one
// when listening).
func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("bad port %q: want a number from 0 to 65535", s)
	}
	return p, nil
}

// String returns the address in the form Parse accepts.
func (a Addr) String() string {
	if a.Network == Unix {
		return a.Host
	}
	if a.Host == "" {
		return strconv.Itoa(a.Port)
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// ListenAddress is the address to give net.Listen: a bare port listens
// on every interface.
func (a Addr) ListenAddress() string {
	if a.Network == Unix {
		return a.Host
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// DialAddress is the address to give net.Dial: a bare port dials
// localhost.
func (a Addr) DialAddress() string {
	if a.Network == Unix {
		return a.Host
	}
	host := a.Host
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Listen parses s and listens on it. For a Unix socket, a leftover socket
// file nobody answers on is removed first; a socket a live process
// answers on is an error.
func Listen(ctx context.Context, s string) (net.Listener, error) {
	a, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if a.Network == Unix {
		if err := checkSocketPath(a.Host); err != nil {
			return nil, err
		}
		if err := removeStaleSocket(ctx, a.Host); err != nil {
			return nil, err
		}
	}
	network := a.Network
	if ip := net.ParseIP(a.Host); network == TCP && ip != nil && ip.To4() != nil {
		// IPv4 only, as written (and as a systemd socket unit binds it):
		// for 0.0.0.0 Go would otherwise open a dual-stack [::] socket.
		network = "tcp4"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, a.ListenAddress())
	if err != nil {
		if a.Network == TCP && errors.Is(err, syscall.EACCES) && a.Port < 1024 {
			return nil, fmt.Errorf("listen on %s: port %d needs root or CAP_NET_BIND_SERVICE (under systemd, let the socket unit bind it): %w", s, a.Port, err)
		}
		return nil, fmt.Errorf("listen on %s: %w", s, err)
	}
	return ln, nil
}

// MaxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes with its terminating NUL).
const MaxSocketPath = 107

// checkSocketPath names what is wrong with a Unix socket path before
// bind would, with less to go on: too long, or its directory missing
// (removeStaleSocket refuses a file in the way that is not a socket).
func checkSocketPath(path string) error {
	if len(path) > MaxSocketPath {
		return fmt.Errorf("listen on %s: the path is %d bytes; a Unix socket path may have at most %d: choose a shorter one", path, len(path), MaxSocketPath)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("listen on %s: directory %s does not exist (create it first)", path, dir)
	case err == nil && !fi.IsDir():
		return fmt.Errorf("listen on %s: %s is not a directory", path, dir)
	}
	return nil
}

// removeStaleSocket removes the socket file at path if nothing answers
// on it. Anything other than a socket is left alone, and refused.
func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("listen on %s: %s exists and is not a socket: remove it or choose another path", path, path)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, Unix, path)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen on %s: another process is serving this socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Only a refused connection proves that nobody listens: a full
		// backlog (EAGAIN) or a permission error may hide a live server.
		return fmt.Errorf("listen on %s: cannot tell whether another process serves this socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listen on %s: removing stale socket: %w", path, err)
	}
	return nil
}

// Dial parses s and connects to it.
func Dial(ctx context.Context, s string) (net.Conn, error) {
	a, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return a.Dial(ctx)
}

// Dial connects to the address.
func (a Addr) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, a.Network, a.DialAddress())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a, err)
	}
	return c, nil
}

// SameListen reports whether listening on a and on b would take the same
// endpoint: one Unix socket path, or one TCP port on the same host or on
// every interface (a bare port, 0.0.0.0, [::]). Port 0 (any free port)
// never clashes. Addresses that do not parse are compared as text.
func SameListen(a, b string) bool {
	pa, erra := Parse(a)
	pb, errb := Parse(b)
	if erra != nil || errb != nil {
		return a == b
	}
	if pa.Network != pb.Network {
		return false
	}
	if pa.Network == Unix {
		return filepath.Clean(pa.Host) == filepath.Clean(pb.Host)
	}
	if pa.Port != pb.Port || pa.Port == 0 {
		return false
	}
	any := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]" }
	return pa.Host == pb.Host || any(pa.Host) || any(pb.Host)
}

// Same reports whether two ADDR values name the same endpoint to connect
// to, as far as can be told without resolving names. Values that do not
// parse are compared as text.
func Same(a, b string) bool {
	pa, erra := Parse(a)
	pb, errb := Parse(b)
	if erra != nil || errb != nil {
		return a == b
	}
	return pa.DialAddress() == pb.DialAddress()
}

// SameListenPairs lists the pairs {i, j}, i < j, of addrs (empty ones
// skipped) that SameListen says take the same endpoint.
func SameListenPairs(addrs []string) [][2]int {
	var pairs [][2]int
	for i, a := range addrs {
		for j := i + 1; j < len(addrs); j++ {
			if a != "" && addrs[j] != "" && SameListen(a, addrs[j]) {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	return pairs
}
