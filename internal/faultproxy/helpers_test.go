package faultproxy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// hangGuard bounds waits that only end if the code under test works; it
// catches hangs and is never an assertion about speed.
const hangGuard = 30 * time.Second

// checkLeaks fails t if goroutines started during the test outlive it. Call
// it first so that its cleanup runs after every other.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(hangGuard)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// server runs handle for each connection to a loopback listener until the
// test ends; it returns the listener's address.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echoServer echoes each connection until EOF, then closes it.
func echoServer(t *testing.T) string {
	return server(t, func(c net.Conn) { io.Copy(c, c) })
}

// sinkServer sends everything each connection delivers, up to EOF or an
// error, on the returned channel.
func sinkServer(t *testing.T) (string, <-chan []byte) {
	got := make(chan []byte, 16)
	addr := server(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
	})
	return addr, got
}

// duplexServer writes greeting on each connection once greet is closed
// and, at the same time, reads it to EOF and sends what it read on the
// returned channel: each direction flows without waiting for the other.
func duplexServer(t *testing.T, greeting []byte, greet <-chan struct{}) (string, <-chan []byte) {
	got := make(chan []byte, 16)
	addr := server(t, func(c net.Conn) {
		wrote, read := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(wrote)
			select {
			case <-greet:
			case <-read: // a test that failed before greet: no greeting
				select {
				case <-greet:
				default:
					return
				}
			}
			c.Write(greeting)
		}()
		b, _ := io.ReadAll(c)
		close(read)
		got <- b
		<-wrote // the handler's end closes the connection
	})
	return addr, got
}

// proxyGoroutines counts the goroutines running the proxy's own code.
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("faultproxy.(*Proxy)")) || bytes.Contains(g, []byte("faultproxy.(*conn)")) {
			n++
		}
	}
	return n
}

// sourceServer writes data on each connection and then closes it.
func sourceServer(t *testing.T, data []byte) string {
	return server(t, func(c net.Conn) { c.Write(data) })
}

func newProxy(t *testing.T, target string, opts ...Option) *Proxy {
	t.Helper()
	p, err := New(context.Background(), "127.0.0.1:0", target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// roundTrip writes data on c from another goroutine and reads len(data)
// bytes back.
func roundTrip(t *testing.T, c net.Conn, data []byte) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() { _, err := c.Write(data); werr <- err }()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

// waitStats polls the proxy's counters until ok accepts them.
func waitStats(t *testing.T, p *Proxy, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		s := p.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, s)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv waits for a value on ch.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatal("nothing received")
		panic("unreachable")
	}
}

// diffBits lists, for each offset where a and b differ, the XOR of the two
// bytes.
func diffBits(a, b []byte) map[int]byte {
	d := make(map[int]byte)
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			d[i] = a[i] ^ b[i]
		}
	}
	return d
}

func equalPrefix(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
