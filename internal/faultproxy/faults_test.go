package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
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
	// With 1-byte chunks every flip is on a chunk's first and last byte;
	// with 64-byte ones, offsets 0, 63, 64 and 128 are on chunk edges when
	// the reads fill the buffer.
	for _, size := range []int{1, 64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			checkLeaks(t)
			p := newProxy(t, echoServer(t), WithBufferSize(size))
			want := map[int]byte{}
			for _, f := range []struct {
				dir Dir
				off int64
				bit uint
			}{{ClientToServer, 0, 0}, {ClientToServer, 7, 0}, {ClientToServer, 63, 5}, {ServerToClient, 64, 6},
				{ServerToClient, 100, 3}, {ClientToServer, 128, 2}, {ServerToClient, 299, 7}} {
				if err := p.FlipBit(f.dir, f.off, f.bit); err != nil {
					t.Fatal(err)
				}
				want[int(f.off)] = 1 << f.bit
			}
			data := randBytes(300, 8)
			for i := range 2 { // new connections get the same flips
				got := roundTrip(t, dial(t, p), data)
				if d := diffBits(got, data); !maps.Equal(d, want) {
					t.Fatalf("connection %d: flipped %v, want %v", i, d, want)
				}
			}
			if s := p.Stats(); s.Flipped != int64(2*len(want)) {
				t.Fatalf("Flipped = %d, want %d", s.Flipped, 2*len(want))
			}
		})
	}
}

// A flip, stall, delay or random flips in one direction touch that
// direction only: a server that greets each connection and reads it at
// the same time sees both directions apart (an echo server cannot).
func TestFaultsTouchTheirDirectionOnly(t *testing.T) {
	greeting, msg := randBytes(500, 20), randBytes(400, 21)
	type fault struct {
		name string
		set  func(p *Proxy, dir Dir)
		held bool // nothing in dir is forwarded until heal is called
		heal func(p *Proxy, dir Dir)
	}
	faults := []fault{
		{name: "flip", set: func(p *Proxy, dir Dir) { p.FlipBit(dir, 3, 1) }},
		{name: "fliprandom", set: func(p *Proxy, dir Dir) { p.FlipRandom(dir, 1, 9) }},
		{name: "stall", set: func(p *Proxy, dir Dir) { p.Stall(dir, true) }, held: true,
			heal: func(p *Proxy, dir Dir) { p.Stall(dir, false) }},
		{name: "delay", set: func(p *Proxy, dir Dir) { p.Delay(dir, time.Hour) }, held: true,
			heal: func(p *Proxy, dir Dir) { p.Delay(dir, 0) }},
	}
	for _, f := range faults {
		for _, dir := range []Dir{ClientToServer, ServerToClient} {
			for _, open := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/open=%v", f.name, dir, open), func(t *testing.T) {
					checkLeaks(t)
					greet := make(chan struct{})
					addr, received := duplexServer(t, greeting, greet)
					p := newProxy(t, addr)
					var c *net.TCPConn
					if open { // set on a connection already open
						c = dial(t, p)
						waitStats(t, p, "the connection", func(s Stats) bool { return s.Active == 1 })
					}
					f.set(p, dir)
					if !open {
						c = dial(t, p)
					}
					close(greet)
					c.Write(msg)
					c.CloseWrite()
					var gotGreeting []byte
					if f.held {
						// The other direction flows whole; this one not at all.
						if dir == ClientToServer {
							gotGreeting = make([]byte, len(greeting))
							if _, err := io.ReadFull(c, gotGreeting); err != nil {
								t.Fatal(err)
							}
						} else {
							equalPrefix(t, recv(t, received), msg)
						}
						s := p.Stats()
						if fwd := [2]int64{s.C2S, s.S2C}[dir]; fwd != 0 {
							t.Fatalf("%v forwarded %d bytes while held", dir, fwd)
						}
						f.heal(p, dir)
					}
					rest, err := io.ReadAll(c)
					if err != nil {
						t.Fatal(err)
					}
					gotGreeting = append(gotGreeting, rest...)
					var gotMsg []byte
					if f.held && dir == ServerToClient {
						gotMsg = msg // already checked
					} else {
						gotMsg = recv(t, received)
					}
					changed, clean := gotMsg, gotGreeting
					sent, other := msg, greeting
					if dir == ServerToClient {
						changed, clean, sent, other = gotGreeting, gotMsg, greeting, msg
					}
					equalPrefix(t, clean, other)
					if len(changed) != len(sent) {
						t.Fatalf("%v: %d bytes arrived, %d sent", dir, len(changed), len(sent))
					}
					if d := diffBits(changed, sent); f.held && len(d) != 0 || !f.held && len(d) == 0 {
						t.Fatalf("%v: %d bytes changed", dir, len(d))
					}
				})
			}
		}
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
	var seen byte
	for i := range data {
		x := got[i] ^ data[i]
		if x == 0 || x&(x-1) != 0 {
			t.Fatalf("byte %d: XOR %#x, want exactly one bit", i, x)
		}
		seen |= x
	}
	if seen != 0xff {
		t.Fatalf("over 1000 bytes only bits %08b were flipped", seen)
	}
}

// Each connection draws its own flips from (seed, its number): two
// connections through one proxy are corrupted differently, and the same
// on a second proxy with the same seed.
func TestFlipRandomPerConnection(t *testing.T) {
	checkLeaks(t)
	data := randBytes(4096, 14)
	run := func() [2][]byte {
		addr, got := sinkServer(t)
		p := newProxy(t, addr)
		if err := p.FlipRandom(ClientToServer, 0.05, 7); err != nil {
			t.Fatal(err)
		}
		var out [2][]byte
		for i := range out {
			c := dial(t, p)
			c.Write(data)
			c.CloseWrite()
			out[i] = recv(t, got)
		}
		return out
	}
	a, b := run(), run()
	if bytes.Equal(a[0], a[1]) {
		t.Fatal("two connections with the same seed got the same flips")
	}
	if !bytes.Equal(a[0], b[0]) || !bytes.Equal(a[1], b[1]) {
		t.Fatal("the same connection numbers of two proxies with one seed got different flips")
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

// Heal lets go of chunks already held by a stall or a delay.
func TestHealReleasesHeldChunks(t *testing.T) {
	for _, f := range []struct {
		name string
		set  func(p *Proxy)
	}{
		{"stall", func(p *Proxy) { p.Stall(ServerToClient, true) }},
		{"delay", func(p *Proxy) { p.Delay(ServerToClient, time.Hour) }},
	} {
		t.Run(f.name, func(t *testing.T) {
			checkLeaks(t)
			p := newProxy(t, echoServer(t))
			c := dial(t, p)
			f.set(p)
			c.Write([]byte("held"))
			// The echo came back to the proxy and waits there.
			waitStats(t, p, "the request forwarded", func(s Stats) bool { return s.C2S == 4 })
			time.Sleep(20 * time.Millisecond)
			if s := p.Stats(); s.S2C != 0 {
				t.Fatalf("forwarded %d bytes of the echo before Heal", s.S2C)
			}
			p.Heal()
			c.SetReadDeadline(time.Now().Add(hangGuard))
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
				t.Fatalf("after Heal: %q, %v", got, err)
			}
		})
	}
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
