package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
)

func TestEcho(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	data := randBytes(1<<20, 1)
	equalPrefix(t, roundTrip(t, c, data), data)
	// A chunk is counted once written, so the count may trail the reader.
	n := int64(len(data))
	waitStats(t, p, "byte counts", func(s Stats) bool {
		return s.Accepted == 1 && s.Active == 1 && s.C2S == n && s.S2C == n
	})
}

func TestHalfClosePassedOn(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	data := randBytes(100<<10, 2)
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c) // EOF only after the echo server saw our EOF
	if err != nil {
		t.Fatal(err)
	}
	equalPrefix(t, got, data)
	waitStats(t, p, "connection gone", func(s Stats) bool { return s.Active == 0 })
}

func TestCloseWithActiveConnections(t *testing.T) {
	checkLeaks(t)
	p, err := New(context.Background(), "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Stall(ServerToClient, true)
	var conns []*net.TCPConn
	for range 3 {
		c := dial(t, p)
		c.Write(randBytes(64<<10, 3)) // held by the stall
		conns = append(conns, c)
	}
	waitStats(t, p, "three connections", func(s Stats) bool { return s.Active == 3 })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	if err := recv(t, done); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the proxy's goroutines: none is left but, at most,
	// one between its last deferred call and its end.
	for i := 0; proxyGoroutines() > 0; i++ {
		if i == 3 {
			t.Fatalf("%d goroutines of the proxy still running after Close returned", proxyGoroutines())
		}
		runtime.Gosched()
	}
	for i, c := range conns {
		if _, err := io.ReadAll(c); err != nil && !isReset(err) {
			t.Errorf("conn %d: read after Close: %v", i, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("proxy still accepts after Close")
	}
}

func TestContextCancelCloses(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	roundTrip(t, c, []byte("hello"))
	cancel()
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("read after cancel: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDialFailure(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := newProxy(t, dead)
	c := dial(t, p)
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatal(err)
	}
	waitStats(t, p, "dial failure", func(s Stats) bool { return s.DialFailed == 1 && s.Active == 0 })
}

func TestNewErrors(t *testing.T) {
	if _, err := New(context.Background(), "127.0.0.1:0", "x", WithBufferSize(0)); err == nil {
		t.Error("buffer size 0 accepted")
	}
	if _, err := New(context.Background(), "no-such-host-name.invalid:0", "x"); err == nil {
		t.Error("bad listen address accepted")
	}
}

func TestParseDir(t *testing.T) {
	for _, d := range []Dir{ClientToServer, ServerToClient} {
		got, err := ParseDir(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDir(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDir("up"); err == nil {
		t.Error(`ParseDir("up") succeeded`)
	}
}

// isReset reports a connection reset: closing a socket that still has
// unread input sends RST rather than FIN, which is a clean end here.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}
