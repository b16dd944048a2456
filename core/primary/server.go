package primary

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/zrs-replication/zrs/internal/netaddr"
	"golang.org/x/sync/errgroup"
)

// Listen opens addr (a port, host:port, or a Unix socket path containing
// "/") for secondaries and returns the bound address (useful with port
// 0). Connections are accepted once Serve runs.
func (p *Primary) Listen(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := netaddr.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := p.AddListener(ln); err != nil {
		ln.Close()
		return nil, err
	}
	p.log.Info("listening for secondaries", logKeyAddr, ln.Addr().String())
	return ln.Addr(), nil
}

// AddListener makes Serve accept secondaries from ln (any net.Listener:
// tests give in-memory ones). The primary closes ln at shutdown.
func (p *Primary) AddListener(ln net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return fmt.Errorf("primary: add listener: closed")
	}
	p.listeners = append(p.listeners, ln)
	return nil
}

// Serve accepts secondaries on the listeners added so far, each streamed
// by its own goroutine, until ctx ends or Shutdown starts; then it closes
// the listeners and returns (nil after Shutdown, ctx.Err() otherwise).
// The streams it started keep running until Shutdown.
func (p *Primary) Serve(ctx context.Context) error {
	p.mu.Lock()
	lns := p.listeners
	p.mu.Unlock()
	if len(lns) == 0 {
		return errors.New("primary: serve: no listener (call Listen first)")
	}
	var g errgroup.Group
	for _, ln := range lns {
		g.Go(func() error { return p.acceptLoop(ln) })
	}
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-p.serving:
	}
	p.closeListeners()
	if aerr := g.Wait(); err == nil {
		err = aerr
	}
	return err
}

// acceptLoop accepts on ln until it is closed. Temporary accept errors
// (out of file descriptors) are retried after a pause, logged once.
func (p *Primary) acceptLoop(ln net.Listener) error {
	pause := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			if pause == 5*time.Millisecond {
				p.log.Error("accept failed; retrying", logKeyAddr, ln.Addr().String(), logKeyErr, err)
			}
			select {
			case <-time.After(pause):
			case <-p.serving:
				return nil
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		p.startStream(conn)
	}
}

// startStream runs a stream for conn in the primary's group, unless
// Shutdown has started.
func (p *Primary) startStream(conn net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		conn.Close()
		return
	}
	if err := netaddr.SetSendTimeout(conn, p.opts.SendTimeout); err != nil {
		p.log.Warn(err.Error(), logKeyAddr, conn.RemoteAddr().String())
	}
	s := newStream(p, conn)
	p.streams[s] = struct{}{}
	p.group.Go(func() error {
		defer func() {
			p.mu.Lock()
			delete(p.streams, s)
			p.mu.Unlock()
		}()
		defer s.contain("streaming to the secondary", nil)
		s.run(p.ctx)
		return nil
	})
}

// closeListeners closes every listener (idempotent: a second Close of a
// net.Listener just errors).
func (p *Primary) closeListeners() {
	p.mu.Lock()
	lns := p.listeners
	p.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

// Shutdown stops the primary: Begin refuses new transactions, the
// listeners close, every stream sends what is committed and then ends
// (bounded by ctx: when ctx ends first, the remaining connections are
// cut), and finally the wrapped storage is closed (which, for a
// FileStorage, aborts a transaction still in progress and saves the
// index). It is idempotent; later calls wait for the first and return its
// result.
//
// A transaction finishing concurrently with Shutdown may be committed
// after the streams ended; secondaries get it when they next connect.
func (p *Primary) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		select {
		case <-p.done:
			return p.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.closing = true
	close(p.serving)
	p.mu.Unlock()

	p.closeListeners()
	close(p.drain)
	waited := make(chan struct{})
	go func() {
		p.group.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		// The stop's time may have gone elsewhere (a ZEO transaction the
		// daemon waited for): warn only of secondaries actually cut off.
		if peers := p.streamPeers(); len(peers) > 0 {
			p.log.Warn("shutdown: time ran out before every secondary had everything; disconnecting them (they catch up when they reconnect)",
				"secondaries", peers)
		}
		p.cancel()
		<-waited
	}
	p.cancel()
	p.closeErr = p.st.Close()
	close(p.done)
	return p.closeErr
}

// streamPeers lists the peers of the streams still running.
func (p *Primary) streamPeers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	peers := make([]string, 0, len(p.streams))
	for s := range p.streams {
		peers = append(peers, s.peer)
	}
	slices.Sort(peers)
	return peers
}

// Close is Shutdown bounded by DefaultShutdownTimeout, as zodb.Storage
// requires a Close without a context.
func (p *Primary) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultShutdownTimeout)
	defer cancel()
	return p.Shutdown(ctx)
}
