package faultproxy

import (
	"errors"
	"io"
	"math/bits"
	"net"
	"sync"
	"time"
)

// conn is one proxied connection: the accepted client side and the dialled
// server side.
type conn struct {
	id     uint64   // accept order, from 1
	client net.Conn // accepted from the listener
	server net.Conn // dialled to the target

	pipes [2]pipeState // per Dir; guarded by Proxy.mu
	cut   bool         // closed by a cut (counted once); guarded by Proxy.mu

	closeOnce sync.Once
	done      chan struct{} // closed by close
}

// close closes both sides; it is idempotent and never blocks on I/O.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// ends returns the source and destination of dir.
func (c *conn) ends(dir Dir) (src, dst net.Conn) {
	if dir == ClientToServer {
		return c.client, c.server
	}
	return c.server, c.client
}

// serve dials the target for an accepted connection and pumps both
// directions until the connection ends.
func (p *Proxy) serve(id uint64, nc net.Conn) {
	defer p.wg.Done()
	var d net.Dialer
	sc, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.mu.Lock()
		p.stats.DialFailed++
		p.mu.Unlock()
		p.log.Warn("dial target failed", "conn", id, "err", err)
		nc.Close()
		return
	}
	c := &conn{id: id, client: nc, server: sc, done: make(chan struct{})}
	if !p.register(c) {
		c.close()
		return
	}
	p.log.Debug("proxying", "conn", id, "client", nc.RemoteAddr().String())
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(c, ClientToServer) })
	p.pump(c, ServerToClient)
	wg.Wait()
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.log.Debug("closed", "conn", id)
}

// register adds c to the open connections with the current faults; it
// reports false if the proxy is closing.
func (p *Proxy) register(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for i := range c.pipes {
		c.pipes[i] = newPipeState(&p.dirs[i], c.id)
	}
	p.conns[c] = struct{}{}
	return true
}

// pump forwards dir of c until EOF (passed on as a half-close), an error,
// a cut or the connection's close.
func (p *Proxy) pump(c *conn, dir Dir) {
	src, dst := c.ends(dir)
	buf := make([]byte, p.cfg.bufSize)
	for {
		if p.cutReached(c, dir) {
			p.cut(c)
			return
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if !p.hold(c, dir, time.Now()) {
				return
			}
			chunk, cutNow := p.commit(c, dir, buf[:n])
			if len(chunk) > 0 {
				if _, err := dst.Write(chunk); err != nil {
					c.close()
					return
				}
				p.count(dir, len(chunk))
			}
			if cutNow {
				p.cut(c)
				return
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				closeWrite(dst)
			} else {
				c.close()
			}
			return
		}
	}
}

// hold waits while dir is stalled and until its delay has passed since
// readAt; it reports false if the connection closed meanwhile.
func (p *Proxy) hold(c *conn, dir Dir, readAt time.Time) bool {
	for {
		p.mu.Lock()
		f, changed := p.dirs[dir], p.changed
		p.mu.Unlock()
		var timer *time.Timer
		var timeout <-chan time.Time
		if !f.stalled {
			wait := time.Until(readAt.Add(f.delay))
			if wait <= 0 {
				return true
			}
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-changed:
			if timer != nil {
				timer.Stop()
			}
		case <-timeout:
			return true
		case <-c.done:
			if timer != nil {
				timer.Stop()
			}
			return false
		}
	}
}

// commit takes the part of buf that dir may still forward before a cut,
// applies the pending flips to it and counts it as sent. cutNow reports
// that the cut is reached.
func (p *Proxy) commit(c *conn, dir Dir, buf []byte) (chunk []byte, cutNow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := &c.pipes[dir]
	n := int64(len(buf))
	if ps.cutAt >= 0 {
		n = min(n, ps.cutAt-ps.sent)
	}
	chunk = buf[:n]
	for off, mask := range ps.flips {
		if off >= ps.sent && off < ps.sent+n {
			chunk[off-ps.sent] ^= mask
			p.stats.Flipped += int64(bits.OnesCount8(mask))
			delete(ps.flips, off)
		}
	}
	if ps.rng != nil {
		for i := range chunk {
			if ps.rng.Float64() < ps.prob {
				chunk[i] ^= 1 << ps.rng.IntN(8)
				p.stats.Flipped++
			}
		}
	}
	ps.sent += n
	return chunk, ps.cutAt >= 0 && ps.sent >= ps.cutAt
}

func (p *Proxy) cutReached(c *conn, dir Dir) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := &c.pipes[dir]
	return ps.cutAt >= 0 && ps.sent >= ps.cutAt
}

// cut closes c because of CutAfter, counting it once.
func (p *Proxy) cut(c *conn) {
	p.mu.Lock()
	if !c.cut {
		c.cut = true
		p.stats.Cuts++
	}
	p.mu.Unlock()
	c.close()
}

func (p *Proxy) count(dir Dir, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == ClientToServer {
		p.stats.C2S += int64(n)
	} else {
		p.stats.S2C += int64(n)
	}
}

// closeWrite passes a half-close on, or closes c if it cannot half-close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
