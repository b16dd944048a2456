package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// dirFaults are the faults of one direction that new connections start with
// (cut, flips, random) or that every connection reads live (delay, stall).
type dirFaults struct {
	delay    time.Duration
	stalled  bool
	cut      int64          // bytes to forward before cutting; -1 = no cut
	flips    map[int64]byte // stream offset → XOR mask
	randProb float64        // probability of flipping a bit in each byte; 0 = off
	randSeed uint64
}

func newDirFaults() dirFaults { return dirFaults{cut: -1, flips: make(map[int64]byte)} }

// pipeState is one direction of one connection; guarded by Proxy.mu.
type pipeState struct {
	sent  int64          // bytes committed for forwarding since the connection started
	cutAt int64          // value of sent at which to cut; -1 = no cut
	flips map[int64]byte // pending flips at offsets ≥ sent
	rng   *rand.Rand     // nil = no random flips
	prob  float64
}

// newPipeState starts a connection's direction from the proxy's faults.
func newPipeState(f *dirFaults, id uint64) pipeState {
	ps := pipeState{cutAt: f.cut, flips: make(map[int64]byte, len(f.flips))}
	for off, m := range f.flips {
		ps.flips[off] = m
	}
	ps.setRandom(f.randProb, f.randSeed, id)
	return ps
}

func (ps *pipeState) setRandom(prob float64, seed, id uint64) {
	ps.rng, ps.prob = nil, prob
	if prob > 0 {
		ps.rng = rand.New(rand.NewPCG(seed, id))
	}
}

// broadcastLocked wakes every pipe waiting on a stall or a delay.
func (p *Proxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func checkDir(dir Dir) {
	if !dir.valid() {
		panic(fmt.Sprintf("faultproxy: invalid %v", dir))
	}
}

// Delay makes every chunk read in dir wait d, counted from when it was read,
// before it is forwarded. d ≤ 0 removes the delay. A change applies at once
// to chunks already waiting.
func (p *Proxy) Delay(dir Dir, d time.Duration) {
	checkDir(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs[dir].delay = max(d, 0)
	p.broadcastLocked()
}

// Stall stops (on) or resumes (off) forwarding in dir. While stalled, each
// connection holds at most one chunk it has read; the rest waits in kernel
// buffers, and the connection stays open.
func (p *Proxy) Stall(dir Dir, on bool) {
	checkDir(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs[dir].stalled = on
	p.broadcastLocked()
}

// CutAfter makes each connection forward exactly n more bytes in dir and
// then close both its sides; new connections forward n bytes from their
// start. n < 0 clears the cut. With n = 0 open connections are cut at once.
func (p *Proxy) CutAfter(dir Dir, n int64) {
	checkDir(dir)
	n = max(n, -1)
	p.mu.Lock()
	p.dirs[dir].cut = n
	var cutNow []*conn
	for c := range p.conns {
		ps := &c.pipes[dir]
		ps.cutAt = -1
		if n >= 0 {
			ps.cutAt = ps.sent + n
		}
		if n == 0 {
			cutNow = append(cutNow, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cutNow {
		p.cut(c)
	}
}

// FlipBit flips bit (0 = least significant, up to 7) of the byte at offset
// of each connection's stream in dir, counted from the connection's start.
// Open connections that have already forwarded that byte are unchanged.
// Setting the same flip twice cancels it.
func (p *Proxy) FlipBit(dir Dir, offset int64, bit uint) error {
	checkDir(dir)
	if offset < 0 || bit > 7 {
		return fmt.Errorf("faultproxy: flip %v: bad offset %d or bit %d (want offset ≥ 0, bit 0..7)", dir, offset, bit)
	}
	mask := byte(1) << bit
	p.mu.Lock()
	defer p.mu.Unlock()
	xorFlip(p.dirs[dir].flips, offset, mask)
	for c := range p.conns {
		if ps := &c.pipes[dir]; offset >= ps.sent {
			xorFlip(ps.flips, offset, mask)
		}
	}
	return nil
}

func xorFlip(m map[int64]byte, off int64, mask byte) {
	if v := m[off] ^ mask; v != 0 {
		m[off] = v
	} else {
		delete(m, off)
	}
}

// FlipRandom flips one random bit of each byte forwarded in dir with
// probability prob (0 turns random flips off, 1 flips every byte). Every
// connection, open or new, restarts its own generator seeded with
// (seed, connection number), drawing once per byte.
func (p *Proxy) FlipRandom(dir Dir, prob float64, seed uint64) error {
	checkDir(dir)
	if !(prob >= 0 && prob <= 1) {
		return fmt.Errorf("faultproxy: flip random %v: probability %v not in [0, 1]", dir, prob)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs[dir].randProb, p.dirs[dir].randSeed = prob, seed
	for c := range p.conns {
		c.pipes[dir].setRandom(prob, seed, c.id)
	}
	return nil
}

// Refuse makes the proxy accept new connections and close them at once (on),
// or proxy them again (off). Open connections are not affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// DropAll closes every open connection, both sides. New connections are
// still accepted.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	conns := p.snapshotLocked()
	p.stats.Dropped += int64(len(conns))
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Heal clears every fault, for open and new connections: no delay, no
// stall, no cut, no pending flips, no refusal. Counters are kept.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.dirs {
		p.dirs[i] = newDirFaults()
	}
	for c := range p.conns {
		for i := range c.pipes {
			c.pipes[i] = pipeState{sent: c.pipes[i].sent, cutAt: -1, flips: make(map[int64]byte)}
		}
	}
	p.refuse = false
	p.broadcastLocked()
}
