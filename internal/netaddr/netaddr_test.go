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
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in           string
		want         Addr
		listen, dial string
	}{
		{"8100", Addr{TCP, "", 8100}, ":8100", "localhost:8100"},
		{"0", Addr{TCP, "", 0}, ":0", "localhost:0"},
		{"primary:8100", Addr{TCP, "primary", 8100}, "primary:8100", "primary:8100"},
		{"127.0.0.1:5000", Addr{TCP, "127.0.0.1", 5000}, "127.0.0.1:5000", "127.0.0.1:5000"},
		{"[::1]:5000", Addr{TCP, "::1", 5000}, "[::1]:5000", "[::1]:5000"},
		{":5000", Addr{TCP, "", 5000}, ":5000", "localhost:5000"},
		{"./primary.sock", Addr{Unix, "./primary.sock", 0}, "./primary.sock", "./primary.sock"},
		{"/run/zrs/a:b.sock", Addr{Unix, "/run/zrs/a:b.sock", 0}, "/run/zrs/a:b.sock", "/run/zrs/a:b.sock"},
	} {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got != c.want || got.ListenAddress() != c.listen || got.DialAddress() != c.dial {
			t.Errorf("Parse(%q) = %+v listen %q dial %q, want %+v %q %q", c.in, got, got.ListenAddress(), got.DialAddress(), c.want, c.listen, c.dial)
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(%q.String() = %q) = %+v, %v", c.in, got.String(), back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "http", "65536", "-1", "+80", "host:", "host:x", "a:b:c", "host:99999"} {
		if a, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, a)
		}
	}
}

func TestListenDialTCP(t *testing.T) {
	ctx := context.Background()
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
}

// 0.0.0.0 listens on IPv4 only, as written and as a systemd socket unit
// binds it; a bare port listens on both families.
func TestListenIPv4WildcardIsIPv4Only(t *testing.T) {
	ctx := context.Background()
	reaches := func(ln net.Listener, host string) bool {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	for _, c := range []struct {
		addr       string
		v4, v6     bool
		wantFamily string
	}{
		{"0.0.0.0:0", true, false, "IPv4"},
		{"0", true, true, "both"},
	} {
		ln, err := Listen(ctx, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
		if v4, v6 := reaches(ln, "127.0.0.1"), reaches(ln, "::1"); v4 != c.v4 || v6 != c.v6 {
			t.Errorf("Listen(%q): reached over IPv4 %v, over IPv6 %v; want %s", c.addr, v4, v6, c.wantFamily)
		}
		ln.Close()
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.sock")
	// A socket file left behind without a listener.
	ul, err := net.ListenUnix(Unix, &net.UnixAddr{Name: path, Net: Unix})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()

	ln, err := Listen(ctx, path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if _, err := Listen(ctx, path); err == nil {
		t.Fatal("second listen on a live socket succeeded")
	}
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// Dial's error names the address as given (a bare port is dialled as
// localhost:PORT, which the network error alone would name).
func TestDialErrorNamesAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing listens there now
	for _, addr := range []string{path, port} {
		_, err := Dial(context.Background(), addr)
		if err == nil || !strings.Contains(err.Error(), "connect to "+addr+":") {
			t.Errorf("Dial(%q) error %v does not name it", addr, err)
		}
	}
}

// A live server too busy to take one more connection (its backlog full:
// the dial gets EAGAIN, not a refusal) keeps its socket: Listen fails
// instead of removing it as stale.
func TestListenUnixKeepsBusySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepts
		t.Fatal(err)
	}
	// Fill the backlog.
	for i := 0; ; i++ {
		c, err := net.DialTimeout(Unix, path, time.Second)
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("dial %d: %v; want EAGAIN once the backlog is full", i, err)
			}
			break
		}
		defer c.Close()
		if i > 100 {
			t.Fatal("the backlog never filled")
		}
	}
	if ln, err := Listen(context.Background(), path); err == nil {
		ln.Close()
		t.Fatal("Listen took over the socket of a live, busy server")
	} else if !strings.Contains(err.Error(), "cannot tell") {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the busy server's socket was removed: %v", err)
	}
}

// A Unix socket path bind would refuse is named for what is wrong with it.
func TestListenUnixBadPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock")
	for _, c := range []struct{ path, want string }{
		{long, fmt.Sprintf("the path is %d bytes; a Unix socket path may have at most 107: choose a shorter one", len(long))},
		{filepath.Join(dir, "nodir", "s.sock"), "directory " + filepath.Join(dir, "nodir") + " does not exist (create it first)"},
		{file, file + " exists and is not a socket: remove it or choose another path"},
		{filepath.Join(file, "s.sock"), file + " is not a directory"},
	} {
		ln, err := Listen(context.Background(), c.path)
		if err == nil {
			ln.Close()
			t.Errorf("%s: listened", c.path)
			continue
		}
		if !strings.Contains(err.Error(), "listen on "+c.path+": "+c.want) {
			t.Errorf("%s: %v; want %q", c.path, err, c.want)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "data" {
		t.Errorf("the file in the way was touched: %q", b)
	}
}

func TestSameListen(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"8100", "8100", true},
		{"8100", "127.0.0.1:8100", true},
		{"0.0.0.0:8100", "10.0.0.1:8100", true},
		{"[::]:8100", "127.0.0.1:8100", true},
		{"127.0.0.1:8100", "127.0.0.1:8100", true},
		{"127.0.0.1:8100", "127.0.0.2:8100", false},
		{"127.0.0.1:8100", "127.0.0.1:8101", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"/run/zrs/a.sock", "/run/zrs/./a.sock", true},
		{"/run/zrs/a.sock", "/run/zrs/b.sock", false},
		{"/run/zrs/a.sock", "8100", false},
	} {
		if got := SameListen(c.a, c.b); got != c.same {
			t.Errorf("SameListen(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
