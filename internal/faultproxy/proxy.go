package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Dir is a direction of a proxied connection.
type Dir int

const (
	// ClientToServer is the direction from the accepted connection to the target.
	ClientToServer Dir = iota
	// ServerToClient is the direction from the target to the accepted connection.
	ServerToClient
)

// String returns "c2s" or "s2c", the names ParseDir accepts.
func (d Dir) String() string {
	switch d {
	case ClientToServer:
		return "c2s"
	case ServerToClient:
		return "s2c"
	}
	return fmt.Sprintf("Dir(%d)", int(d))
}

// ParseDir parses "c2s" or "s2c".
func ParseDir(s string) (Dir, error) {
	switch s {
	case "c2s":
		return ClientToServer, nil
	case "s2c":
		return ServerToClient, nil
	}
	return 0, fmt.Errorf("faultproxy: bad direction %q (want c2s or s2c)", s)
}

func (d Dir) valid() bool { return d == ClientToServer || d == ServerToClient }

// Option configures a Proxy.
type Option func(*config)

type config struct {
	logger  *slog.Logger
	bufSize int
}

// WithLogger sets the logger for connection events (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithBufferSize sets the largest chunk read and forwarded at once, in bytes
// (default 32 KiB). Delay applies per chunk, so a small buffer makes a delay
// hit more often.
func WithBufferSize(n int) Option { return func(c *config) { c.bufSize = n } }

// Stats are counters since the proxy started.
type Stats struct {
	Accepted   int64 `json:"accepted"`    // connections accepted, refused ones included
	Refused    int64 `json:"refused"`     // connections closed at once because of Refuse
	DialFailed int64 `json:"dial_failed"` // connections closed because the target could not be dialled
	Active     int   `json:"active"`      // connections being proxied now
	Cuts       int64 `json:"cuts"`        // connections closed by CutAfter
	Dropped    int64 `json:"dropped"`     // connections closed by DropAll
	Flipped    int64 `json:"flipped"`     // bits flipped by FlipBit and FlipRandom
	C2S        int64 `json:"c2s"`         // bytes forwarded client to server
	S2C        int64 `json:"s2c"`         // bytes forwarded server to client
}

// Proxy forwards connections from its listener to a target, with faults.
type Proxy struct {
	ln     net.Listener
	target string
	cfg    config
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy starts

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex         // guards everything below and every conn's pipe state
	closed  bool               // Close has begun; no new conns are registered
	nextID  uint64             // number of the last accepted connection
	conns   map[*conn]struct{} // connections being proxied
	refuse  bool               // close new connections at once
	dirs    [2]dirFaults       // faults for new connections, per Dir
	changed chan struct{}      // closed and replaced whenever a Stall or Delay changes
	stats   Stats              // counters; Active is computed from conns
}

// New listens on listenAddr (use "127.0.0.1:0" for a free port) and proxies
// each accepted connection to targetAddr, dialled when the connection is
// accepted. The proxy runs until Close is called or ctx is cancelled.
func New(ctx context.Context, listenAddr, targetAddr string, opts ...Option) (*Proxy, error) {
	cfg := config{logger: slog.New(slog.DiscardHandler), bufSize: 32 << 10}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.bufSize <= 0 {
		return nil, fmt.Errorf("faultproxy: buffer size %d must be positive", cfg.bufSize)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &Proxy{
		ln: ln, target: targetAddr, cfg: cfg, ctx: pctx, cancel: cancel,
		log:     cfg.logger.With("proxy", ln.Addr().String(), "target", targetAddr),
		conns:   make(map[*conn]struct{}),
		changed: make(chan struct{}),
	}
	for i := range p.dirs {
		p.dirs[i] = newDirFaults()
	}
	p.wg.Add(2)
	go p.acceptLoop()
	go func() {
		defer p.wg.Done()
		<-pctx.Done()
		p.shutdown()
	}()
	return p, nil
}

// Addr returns the address the proxy listens on, as "host:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines to return. It is idempotent; later calls return the
// first call's result.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
	return p.closeErr
}

// shutdown runs once, when the proxy's context ends.
func (p *Proxy) shutdown() {
	p.mu.Lock()
	p.closed = true
	conns := p.snapshotLocked()
	p.mu.Unlock()
	if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		p.closeErr = fmt.Errorf("faultproxy: close listener: %w", err)
	}
	for _, c := range conns {
		c.close()
	}
}

func (p *Proxy) snapshotLocked() []*conn {
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("accept failed", "err", err)
			if !sleepCtx(p.ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.stats.Accepted++
		p.nextID++
		id := p.nextID
		refuse := p.refuse || p.closed
		if refuse {
			p.stats.Refused++
		}
		p.mu.Unlock()
		if refuse {
			nc.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(id, nc)
	}
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Active = len(p.conns)
	return s
}

// sleepCtx sleeps for d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
