package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"math/bits"
	"net"
	"os"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	checkLeaks(t)
	const d = 40 * time.Millisecond
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("warm up"))
	p.Delay(ClientToServer, d)
	p.Delay(ServerToClient, d)
	start := time.Now()
	roundTrip(t, c, []byte("ping"))
	if rtt := time.Since(start); rtt < 2*d {
		t.Fatalf("round trip took %v, want ≥ %v", rtt, 2*d)
	}
	p.Delay(ClientToServer, 0)
	p.Delay(ServerToClient, 0)
	roundTrip(t, c, []byte("fast again"))
}

func TestDelayChangeWakesWaitingChunk(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	p.Delay(ClientToServer, time.Hour)
	c.Write([]byte("x"))
	waitStats(t, p, "connection", func(s Stats) bool { return s.Active == 1 })
	p.Delay(ClientToServer, 0) // the held chunk goes now, not in an hour
	got := make([]byte, 1)
	if _, err := io.ReadFull(c, got); err != nil || got[0] != 'x' {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestStallThenResume(t *testing.T) {
	for _, dir := range []Dir{ClientToServer, ServerToClient} {
		t.Run(dir.String(), func(t *testing.T) {
			checkLeaks(t)
			p := newProxy(t, echoServer(t), WithBufferSize(4096))
			c := dial(t, p)
			roundTrip(t, c, []byte("before"))
			waitStats(t, p, "first echo counted", func(s Stats) bool { return s.C2S == 6 && s.S2C == 6 })
			p.Stall(dir, true)
			data := randBytes(8<<20, 4) // more than the kernel buffers hold
			werr := make(chan error, 1)
			go func() { _, err := c.Write(data); werr <- err }()

			// Nothing comes back while stalled: prove it by a read that
			// times out, then check the counters have not moved on.
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read while stalled: %d bytes, %v", n, err)
			}
			c.SetReadDeadline(time.Time{})
			s := p.Stats()
			if fwd := [2]int64{s.C2S, s.S2C}[dir]; fwd != int64(len("before")) {
				t.Fatalf("%v forwarded %d bytes, want only the %d before the stall", dir, fwd, len("before"))
			}

			p.Stall(dir, false)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			equalPrefix(t, got, data)
			if err := recv(t, werr); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCutAfterFromStart(t *testing.T) {
	data := randBytes(200<<10, 5)
	for _, n := range []int64{0, 1, 1234, 4096, 100 << 10} {
		t.Run("c2s", func(t *testing.T) {
			checkLeaks(t)
			addr, got := sinkServer(t)
			p := newProxy(t, addr, WithBufferSize(4096))
			p.CutAfter(ClientToServer, n)
			c := dial(t, p)
			go c.Write(data) // fails once the cut closes the connection
			equalPrefix(t, recv(t, got), data[:n])
			waitStats(t, p, "cut", func(s Stats) bool { return s.Cuts == 1 && s.C2S == n })
		})
		t.Run("s2c", func(t *testing.T) {
			checkLeaks(t)
			p := newProxy(t, sourceServer(t, data), WithBufferSize(4096))
			p.CutAfter(ServerToClient, n)
			c := dial(t, p)
			got, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Fatal(err)
			}
			equalPrefix(t, got, data[:n])
			waitStats(t, p, "cut", func(s Stats) bool { return s.Cuts == 1 && s.S2C == n })
		})
	}
}

func TestCutAfterOpenConnection(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, randBytes(100, 6))
	p.CutAfter(ServerToClient, 50)
	data := randBytes(200, 7)
	c.Write(data)
	got, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatal(err)
	}
	equalPrefix(t, got, data[:50])
	s := waitStats(t, p, "cut", func(s Stats) bool { return s.Active == 0 })
	if s.Cuts != 1 || s.S2C != 150 {
		t.Fatalf("stats %+v", s)
	}

	// The cut stays for new connections until cleared.
	c2 := dial(t, p)
	c2.Write(data)
	if got, _ := io.ReadAll(c2); len(got) != 50 {
		t.Fatalf("second connection got %d bytes, want 50", len(got))
	}
	p.CutAfter(ServerToClient, -1)
	equalPrefix(t, roundTrip(t, dial(t, p), data), data)
}

func TestCutAfterZeroCutsOpenConnectionsAtOnce(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("hi"))
	p.CutAfter(ClientToServer, 0)
	if got, err := io.ReadAll(c); len(got) != 0 || (err != nil && !isReset(err)) {
		t.Fatalf("got %q, %v", got, err)
	}
	waitStats(t, p, "cut", func(s Stats) bool { return s.Cuts == 1 && s.Active == 0 })
}

func TestFlipBit(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t), WithBufferSize(64)) // flips straddle chunks
	if err := p.FlipBit(ClientToServer, 7, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.FlipBit(ServerToClient, 100, 3); err != nil {
		t.Fatal(err)
	}
	data := randBytes(300, 8)
	for i := range 2 { // new connections get the same flips
		got := roundTrip(t, dial(t, p), data)
		want := map[int]byte{7: 1 << 0, 100: 1 << 3}
		if d := diffBits(got, data); !maps.Equal(d, want) {
			t.Fatalf("connection %d: flipped %v, want %v", i, d, want)
		}
	}
	if s := p.Stats(); s.Flipped != 4 {
		t.Fatalf("Flipped = %d, want 4", s.Flipped)
	}
}

func TestFlipBitOpenConnection(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	data := randBytes(100, 9)
	roundTrip(t, c, data)
	p.FlipBit(ServerToClient, 10, 7)  // already passed: no effect
	p.FlipBit(ServerToClient, 150, 7) // 50 bytes into the next write
	got := roundTrip(t, c, data)
	if d := diffBits(got, data); !maps.Equal(d, map[int]byte{50: 0x80}) {
		t.Fatalf("flipped %v, want {50: 0x80}", d)
	}
}

func TestFlipBitTwiceCancels(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	p.FlipBit(ClientToServer, 5, 2)
	p.FlipBit(ClientToServer, 5, 2)
	data := randBytes(10, 10)
	equalPrefix(t, roundTrip(t, dial(t, p), data), data)
}

func TestFlipBitBadArguments(t *testing.T) {
	p := newProxy(t, "127.0.0.1:1")
	if err := p.FlipBit(ClientToServer, 0, 8); err == nil {
		t.Error("bit 8 accepted")
	}
	if err := p.FlipBit(ClientToServer, -1, 0); err == nil {
		t.Error("offset -1 accepted")
	}
	for _, prob := range []float64{-0.1, 1.5} {
		if err := p.FlipRandom(ClientToServer, prob, 1); err == nil {
			t.Errorf("probability %v accepted", prob)
		}
	}
}

// randomFlips sends data client to server through a fresh proxy with
// random flips and returns what the server received.
func randomFlips(t *testing.T, data []byte, prob float64, seed uint64, bufSize int) []byte {
	t.Helper()
	addr, got := sinkServer(t)
	p := newProxy(t, addr, WithBufferSize(bufSize))
	if err := p.FlipRandom(ClientToServer, prob, seed); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	c.Write(data)
	c.CloseWrite()
	b := recv(t, got)
	if len(b) != len(data) {
		t.Fatalf("received %d bytes, want %d", len(b), len(data))
	}
	if s := p.Stats(); s.Flipped != int64(bitsDiffer(b, data)) {
		t.Fatalf("Flipped = %d, but %d bits differ", s.Flipped, bitsDiffer(b, data))
	}
	return b
}

func TestFlipRandomDeterministic(t *testing.T) {
	checkLeaks(t)
	data := randBytes(64<<10, 11)
	a := randomFlips(t, data, 0.01, 42, 32<<10)
	b := randomFlips(t, data, 0.01, 42, 7) // other chunking, same flips
	if !bytes.Equal(a, b) {
		t.Fatalf("same seed, different corruption: %d vs %d bytes changed", len(diffBits(a, data)), len(diffBits(b, data)))
	}
	if n := len(diffBits(a, data)); n == 0 {
		t.Fatal("no byte flipped")
	}
	if c := randomFlips(t, data, 0.01, 43, 32<<10); bytes.Equal(a, c) {
		t.Fatal("seeds 42 and 43 flipped the same bits")
	}
}

func TestFlipRandomEveryByte(t *testing.T) {
	checkLeaks(t)
	data := randBytes(1000, 12)
	got := randomFlips(t, data, 1, 1, 100)
	for i := range data {
		if x := got[i] ^ data[i]; x == 0 || x&(x-1) != 0 {
			t.Fatalf("byte %d: XOR %#x, want exactly one bit", i, x)
		}
	}
}

func TestRefuse(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	p.Refuse(true)
	c := dial(t, p)
	if got, err := io.ReadAll(c); len(got) != 0 || (err != nil && !isReset(err)) {
		t.Fatalf("refused connection: %q, %v", got, err)
	}
	if s := p.Stats(); s.Accepted != 1 || s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
	p.Refuse(false)
	roundTrip(t, dial(t, p), []byte("accepted again"))
}

func TestDropAll(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	a, b := dial(t, p), dial(t, p)
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))
	p.DropAll()
	for _, c := range []net.Conn{a, b} {
		if _, err := io.ReadAll(c); err != nil && !isReset(err) {
			t.Fatal(err)
		}
	}
	s := waitStats(t, p, "drop", func(s Stats) bool { return s.Active == 0 })
	if s.Dropped != 2 {
		t.Fatalf("Dropped = %d, want 2", s.Dropped)
	}
	roundTrip(t, dial(t, p), []byte("new connection"))
}

func TestHeal(t *testing.T) {
	checkLeaks(t)
	p := newProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("x"))
	p.Delay(ClientToServer, time.Hour)
	p.Stall(ServerToClient, true)
	p.CutAfter(ClientToServer, 3)
	p.FlipBit(ServerToClient, 5, 1)
	p.FlipRandom(ClientToServer, 1, 1)
	p.Refuse(true)
	p.Heal()
	data := randBytes(10<<10, 13)
	equalPrefix(t, roundTrip(t, c, data), data)
	equalPrefix(t, roundTrip(t, dial(t, p), data), data)
}

func bitsDiffer(a, b []byte) int {
	n := 0
	for _, x := range diffBits(a, b) {
		n += bits.OnesCount8(x)
	}
	return n
}
