package secondary

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// Storage is what the secondary needs from the storage it applies to: a
// writable ZODB storage (restore with the primary's tids) that can also
// iterate and list undos for its read-only clients. A *fs.FileStorage is
// one; so is a *primary.Primary wrapping one, which relays what this
// secondary applies to further secondaries.
type Storage interface {
	zodb.Storage
	zodb.Iterable
	zodb.Undoer
}

// Compile-time checks.
var (
	_ Storage      = (*fs.FileStorage)(nil)
	_ zodb.Storage = (*Secondary)(nil)
	_ Storage      = (*Secondary)(nil)
)

// Dialer opens a connection to the primary. Tests give in-memory or
// fault-injecting ones.
type Dialer interface {
	Dial(ctx context.Context) (net.Conn, error)
}

// DialFunc adapts a function to Dialer.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Dial calls f.
func (f DialFunc) Dial(ctx context.Context) (net.Conn, error) { return f(ctx) }

// Defaults for Options.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// stableAfter: a connection that lived this long, or applied a
	// transaction, resets the back-off (a primary that refuses us right
	// after the handshake must not be hammered at the minimum delay).
	stableAfter = 5 * time.Second
	// logEvery bounds how often a repeating connection failure is logged.
	logEvery = time.Minute
)

// Log attribute keys.
const (
	logKeyPrimary = "primary"
	logKeyTid     = "tid"
	logKeyErr     = "err"
	logKeyDelay   = "retry_in"
	logKeyTries   = "attempts"
)

// Options configure a Secondary. The zero value is usable.
type Options struct {
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Dialer connects to the primary; nil dials the address given to New.
	Dialer Dialer
	// MinBackoff and MaxBackoff bound the delay between connection
	// attempts, which doubles (with jitter) from MinBackoff after each
	// failed attempt up to MaxBackoff. Zero means DefaultMinBackoff,
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// KeepAlive, when positive, sends an empty frame to the primary at this
	// interval, so a silently dead path is noticed (zc.zrs's
	// keep-alive-delay). Zero sends none.
	KeepAlive time.Duration
	// OnCommit, if set, is called after each replicated transaction is
	// committed locally, with its tid and the oids it wrote (for
	// invalidations). Calls come one at a time, in tid order, from a
	// goroutine of the replication: keep it short (the next transaction's
	// report waits for it).
	OnCommit func(tid zodb.Tid, oids []zodb.Oid)
	// OnPromote, if set, is called once Promote has opened the storage to
	// writes (a ZEO server then tells its read-only fallback clients to
	// reconnect: zeo.Server.StorageWritable).
	OnPromote func()
	// Protocol is ProtoAuto (zrs3, falling back to zrs2.0 for a zc.zrs
	// primary), ProtoZRS2 or ProtoNative.
	Protocol Protocol
	// IdleTimeout (zrs3): reconnect when the primary sends nothing, not
	// even a heartbeat, for this long, or when a transaction in progress
	// brings less than 1 KiB (200 bytes/s if more) in such a period (a damaged length would
	// otherwise keep the secondary waiting while heartbeats trickle in); a
	// slow link that keeps sending is not cut. Zero means IdleHeartbeats
	// times the heartbeat interval the primary announces.
	IdleTimeout time.Duration
	// ReadTimeout (zrs2.0): reconnect when the primary sends nothing for
	// this long (or a transaction in progress less than 1 KiB, as with
	// IdleTimeout). Zero, the default, waits forever as zc.zrs does; a zrs2
	// primary sends nothing while no commits happen, so set it only above
	// the longest quiet period.
	ReadTimeout time.Duration
	// NativeRetry (ProtoAuto) is how long a fall-back to zrs2.0 lasts
	// before zrs3 is tried again; zero means NativeRetry. Each fall-back
	// in a row doubles it, up to 32 times.
	NativeRetry time.Duration
	// NoCompression: do not offer zstd compression (zrs3).
	NoCompression bool
	// NodeID names this secondary to its primary (zrsproto.Hello.Node),
	// the same on every connection, so that its acknowledgements count
	// once towards a sync quorum. A daemon derives it from its host and
	// file, stable across restarts; empty, New picks a random one for
	// the life of the Secondary.
	NodeID string
}

// Secondary applies the transactions streamed by a primary to a local
// storage and serves that storage read-only.
type Secondary struct {
	st     Storage
	addr   string
	dialer Dialer
	opts   Options
	log    *slog.Logger
	ident  atomic.Pointer[zrsproto.Identity] // the local database's identity once known; it never changes

	mu        sync.Mutex
	connected bool      // guarded by mu
	since     time.Time // when the current connection was made; guarded by mu
	lastErr   error     // the last cycle's error; guarded by mu
	running   bool      // Run in progress; guarded by mu
	cancelRun context.CancelFunc
	runDone   chan struct{} // closed when Run returns; guarded by mu
	closed    bool          // guarded by mu

	firstConnect sync.Once // logs the first connection

	nat       nativeState // the primary's protocol (native.go)
	oidsNoted zodb.Oid    // the primary's last oid reservation passed to st (noteOids); the receiving goroutine's

	obs observers // metrics hooks and promotion state (observe.go, promote.go)
}

// New wraps st, to be fed from the primary at addr (a port, host:port or
// a Unix socket path containing "/"; with Options.Dialer it is only a
// label). The secondary owns st from now on: Close closes it. Nothing
// happens until Run.
func New(st Storage, addr string, opts Options) *Secondary {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.NodeID == "" {
		opts.NodeID = rand.Text()
	}
	if opts.NativeRetry <= 0 {
		opts.NativeRetry = NativeRetry
	}
	s := &Secondary{st: st, addr: addr, opts: opts, dialer: opts.Dialer,
		log: log.With("component", "secondary", logKeyPrimary, addr)}
	if s.dialer == nil {
		s.dialer = DialFunc(func(ctx context.Context) (net.Conn, error) { return netaddr.Dial(ctx, addr) })
	}
	return s
}

// Status is a snapshot of the secondary for monitoring.
type Status struct {
	Primary         string    // the primary's address
	Connected       bool      // a connection to the primary is open
	ConnectedSince  time.Time // when it was opened (zero if not connected)
	LastTransaction zodb.Tid  // the last transaction applied (committed locally)
	LastError       string    // why the last connection ended or failed, "" if none
	// Promoting: a Promote gave up (its context ended) after stopping
	// replication, and none has finished since: the storage is still
	// read-only and nothing replicates until Promote is called again. A
	// promotion still within its time is not reported.
	Promoting bool
}

// Status returns the current state.
func (s *Secondary) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Primary: s.addr, Connected: s.connected, LastTransaction: s.st.LastTransaction(),
		Promoting: s.obs.unfinished.Load() && !s.obs.promoted.Load()}
	if s.connected {
		st.ConnectedSince = s.since
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Storage returns the wrapped storage.
func (s *Secondary) Storage() Storage { return s.st }

// Load delegates to the wrapped storage.
func (s *Secondary) Load(ctx context.Context, oid zodb.Oid) ([]byte, zodb.Tid, error) {
	return s.st.Load(ctx, oid)
}

// LoadBefore delegates to the wrapped storage.
func (s *Secondary) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	return s.st.LoadBefore(ctx, oid, before)
}

// TidBefore delegates to the wrapped storage (zodb.TidBefore).
func (s *Secondary) TidBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) (zodb.Tid, error) {
	return zodb.TidBefore(ctx, s.st, oid, before)
}

// AppendLoadBefore delegates to the wrapped storage (through its own
// AppendLoadBefore when it has one).
func (s *Secondary) AppendLoadBefore(ctx context.Context, dst []byte, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	return zodb.AppendLoadBefore(ctx, s.st, dst, oid, before)
}

// LoadSerial delegates to the wrapped storage.
func (s *Secondary) LoadSerial(ctx context.Context, oid zodb.Oid, serial zodb.Tid) ([]byte, error) {
	return s.st.LoadSerial(ctx, oid, serial)
}

// History delegates to the wrapped storage.
func (s *Secondary) History(ctx context.Context, oid zodb.Oid, size int) ([]zodb.HistoryEntry, error) {
	return s.st.History(ctx, oid, size)
}

// LastTransaction is the last transaction applied from the primary.
func (s *Secondary) LastTransaction() zodb.Tid { return s.st.LastTransaction() }

// Len delegates to the wrapped storage.
func (s *Secondary) Len() int { return s.st.Len() }

// Size delegates to the wrapped storage when it knows its size in bytes;
// it returns 0 otherwise.
func (s *Secondary) Size() int64 {
	if sz, ok := s.st.(interface{ Size() int64 }); ok {
		return sz.Size()
	}
	return 0
}

// Oids delegates to the wrapped storage when it can list its oids in
// ascending order; it returns nil otherwise.
func (s *Secondary) Oids() []zodb.Oid {
	if l, ok := s.st.(interface{ Oids() []zodb.Oid }); ok {
		return l.Oids()
	}
	return nil
}

// Iterate delegates to the wrapped storage.
func (s *Secondary) Iterate(ctx context.Context, start, stop zodb.Tid) (zodb.TxnIterator, error) {
	return s.st.Iterate(ctx, start, stop)
}

// UndoLog delegates to the wrapped storage (clients may list, not undo).
func (s *Secondary) UndoLog(ctx context.Context, first, last int, filter func(*zodb.UndoInfo) bool) ([]zodb.UndoInfo, error) {
	return s.st.UndoLog(ctx, first, last, filter)
}

// NewOid fails: a secondary is read-only to its clients (until Promote).
func (s *Secondary) NewOid(ctx context.Context) (zodb.Oid, error) {
	if s.Promoted() {
		return s.st.NewOid(ctx)
	}
	return 0, fmt.Errorf("secondary: new oid: %w", zodb.ErrReadOnly)
}

// Begin fails: a secondary is read-only to its clients; only the
// replication stream writes. After Promote it begins a transaction on the
// wrapped storage.
func (s *Secondary) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	if !s.Promoted() {
		return nil, fmt.Errorf("secondary: begin: %w", zodb.ErrReadOnly)
	}
	t, err := s.st.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	if fn := s.obs.ownCommits.Load(); fn != nil {
		return &observedTxn{Txn: t, obs: *fn}, nil
	}
	return t, nil
}

// ObserveOwnCommits sets fn to be called after each Finish of a
// transaction committed through the promoted secondary (nil removes it):
// its tid (0 on failure), how long Finish took, and its error. Metrics use
// it where the wrapped storage does not report commits itself (a relay's
// primary does). It runs in the committing goroutine: keep it short.
func (s *Secondary) ObserveOwnCommits(fn func(tid zodb.Tid, took time.Duration, err error)) {
	if fn == nil {
		s.obs.ownCommits.Store(nil)
		return
	}
	s.obs.ownCommits.Store(&fn)
}

// observedTxn reports its Finish to an ObserveOwnCommits function.
type observedTxn struct {
	zodb.Txn
	obs func(tid zodb.Tid, took time.Duration, err error)
}

func (t *observedTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	start := time.Now()
	tid, err := t.Txn.Finish(ctx)
	t.obs(tid, time.Since(start), err)
	return tid, err
}

// ReadOnly is true until Promote.
func (s *Secondary) ReadOnly() bool { return !s.Promoted() }

// Close stops Run (aborting a half-received transaction), waits for it,
// and closes the wrapped storage (for a FileStorage: saves the index). It
// is idempotent.
func (s *Secondary) Close() error {
	// A promotion in progress ends first (it has stopped replication, or
	// gives up when its context ends): it must not finish, and report the
	// storage writable, on a storage being closed.
	// Once closed is set, a later Promote refuses; the lock is not held
	// beyond that (a promoted node's status takes it while the storage
	// closes).
	s.obs.promoteMu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.obs.promoteMu.Unlock()
		return nil
	}
	s.closed = true
	cancel, done := s.cancelRun, s.runDone
	s.mu.Unlock()
	s.obs.promoteMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return s.st.Close()
}
