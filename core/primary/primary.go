package primary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"golang.org/x/sync/errgroup"
)

// Storage is what the primary needs from the storage it wraps: a ZODB
// storage that can iterate its history (streams read from it) and undo.
type Storage interface {
	zodb.Storage
	zodb.Iterable
	zodb.Undoer
}

// Compile-time checks: a FileStorage can be wrapped, and a Primary is
// itself a storage (so it can be wrapped in turn, e.g. by a secondary
// relaying to further secondaries).
var (
	_ Storage = (*fs.FileStorage)(nil)
	_ Storage = (*Primary)(nil)
)

// Log attribute keys.
const (
	logKeyAddr  = "addr"
	logKeyPeer  = "peer"
	logKeyTid   = "tid"
	logKeyLast  = "last"
	logKeyProto = "proto"
	logKeyErr   = "err"
)

// DefaultShutdownTimeout bounds Close: how long streams get to send what
// was committed before the storage closes (zc.zrs waits 60 s).
const DefaultShutdownTimeout = 60 * time.Second

// Options configure a Primary. The zero value is usable.
type Options struct {
	// Logger receives connection and stream events; nil discards them.
	Logger *slog.Logger
	// HandshakeTimeout bounds how long a new connection may take to send
	// its two handshake frames; 0 means 30 s. zc.zrs has no such limit; it
	// only stops half-open connections from holding a goroutine forever.
	HandshakeTimeout time.Duration
	// HeartbeatInterval is how often a native (zrs3) stream with nothing
	// to send sends a heartbeat; 0 means DefaultHeartbeatInterval. Native
	// secondaries reconnect after a few intervals of silence.
	HeartbeatInterval time.Duration
	// NoCompression refuses zstd to native secondaries that offer it.
	NoCompression bool
	// CompressLocal compresses for secondaries on this host too (unix
	// sockets, loopback), which by default get the stream uncompressed.
	CompressLocal bool
	// Durability says whether a commit waits for secondaries; the zero
	// value is asynchronous replication, as zc.zrs.
	Durability Durability
	// SendTimeout, when positive, drops a TCP secondary whose host
	// leaves what the primary sent unacknowledged this long
	// (netaddr.SetSendTimeout): a vanished secondary host then stops
	// holding its stream, shown as connected, before the kernel's ~15
	// minutes. Off by default: a live secondary that reads nothing that
	// long is dropped too, and a zc.zrs secondary reads nothing while it
	// votes and finishes a transaction, which for a large one on a slow
	// disk can take minutes — it would reconnect and start again for ever.
	SendTimeout time.Duration
}

// Primary wraps a storage, passes every storage call through, and streams
// every committed transaction to the secondaries connected to it.
//
// Commits through Primary.Begin wake the streams once finished; the commit
// itself never waits for a secondary.
type Primary struct {
	st   Storage
	log  *slog.Logger
	opts Options
	head *headSignal
	// commitObs, if set, is told of every Finish (observe.go).
	commitObs atomic.Pointer[CommitObserver]

	ident       atomic.Pointer[zrsproto.Identity] // the database identity, once known
	ackSignal   *headSignal                       // notified when a native secondary acknowledges
	internalObs atomic.Pointer[func()]            // ObserveInternalErrors
	refusalObs  atomic.Pointer[func()]            // ObserveRefusals
	// oidsAnnounced is the oid reservation the streams were last woken
	// for (announceOids).
	oidsAnnounced atomic.Uint64
	dur           durabilityState
	commits       commitRing   // recent commits, for lag
	unixSeq       atomic.Int64 // numbers the unix-socket secondaries' peer names
	refusals      refusalLog   // rate-limits the log of refused handshakes
	incomplete    refusalLog   // rate-limits the log of handshakes that never ended
	twins         refusalLog   // rate-limits the warning of secondaries sharing a node name

	ctx    context.Context    // lifetime of the streams; cancelled by a forced shutdown
	cancel context.CancelFunc // cancels ctx
	group  *errgroup.Group    // owns every stream and accept goroutine
	drain  chan struct{}      // closed by Shutdown: streams catch up, then end

	mu        sync.Mutex
	listeners []net.Listener       // guarded by mu
	streams   map[*stream]struct{} // guarded by mu
	closing   bool                 // Shutdown started; guarded by mu
	done      chan struct{}        // closed when Shutdown has finished
	closeErr  error                // Shutdown's result; written before done closes
	serving   chan struct{}        // closed when Shutdown starts, ends Serve
}

// New wraps st. The primary owns st from now on: Close closes it.
// Nothing listens until Listen or AddListener.
func New(st Storage, opts Options) *Primary {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 30 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	opts.Durability = opts.Durability.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	return &Primary{
		st: st, log: log.With("component", "primary"), opts: opts, head: newHeadSignal(), ackSignal: newHeadSignal(),
		ctx: ctx, cancel: cancel, group: g, drain: make(chan struct{}),
		streams: make(map[*stream]struct{}), done: make(chan struct{}), serving: make(chan struct{}),
		refusals: refusalLog{now: time.Now}, incomplete: refusalLog{now: time.Now}, twins: refusalLog{now: time.Now},
	}
}

// Storage returns the wrapped storage.
func (p *Primary) Storage() Storage { return p.st }

// NotifyCommitted wakes the streams, as a commit through the primary does.
// Call it after committing to the wrapped storage behind the primary's back.
func (p *Primary) NotifyCommitted() { p.head.Notify() }

// Load delegates to the wrapped storage.
func (p *Primary) Load(ctx context.Context, oid zodb.Oid) ([]byte, zodb.Tid, error) {
	return p.st.Load(ctx, oid)
}

// LoadBefore delegates to the wrapped storage.
func (p *Primary) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	return p.st.LoadBefore(ctx, oid, before)
}

// TidBefore delegates to the wrapped storage (zodb.TidBefore).
func (p *Primary) TidBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) (zodb.Tid, error) {
	return zodb.TidBefore(ctx, p.st, oid, before)
}

// AppendLoadBefore delegates to the wrapped storage (through its own
// AppendLoadBefore when it has one).
func (p *Primary) AppendLoadBefore(ctx context.Context, dst []byte, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	return zodb.AppendLoadBefore(ctx, p.st, dst, oid, before)
}

// LoadSerial delegates to the wrapped storage.
func (p *Primary) LoadSerial(ctx context.Context, oid zodb.Oid, serial zodb.Tid) ([]byte, error) {
	return p.st.LoadSerial(ctx, oid, serial)
}

// History delegates to the wrapped storage.
func (p *Primary) History(ctx context.Context, oid zodb.Oid, size int) ([]zodb.HistoryEntry, error) {
	return p.st.History(ctx, oid, size)
}

// LastTransaction delegates to the wrapped storage.
func (p *Primary) LastTransaction() zodb.Tid { return p.st.LastTransaction() }

// Len delegates to the wrapped storage.
func (p *Primary) Len() int { return p.st.Len() }

// Size delegates to the wrapped storage when it knows its size in bytes;
// it returns 0 otherwise.
func (p *Primary) Size() int64 {
	if sz, ok := p.st.(interface{ Size() int64 }); ok {
		return sz.Size()
	}
	return 0
}

// Oids delegates to the wrapped storage when it can list its oids in
// ascending order; it returns nil otherwise.
func (p *Primary) Oids() []zodb.Oid {
	if l, ok := p.st.(interface{ Oids() []zodb.Oid }); ok {
		return l.Oids()
	}
	return nil
}

// NewOid delegates to the wrapped storage. When that reserved a new
// block of oids, the secondaries are told at once.
func (p *Primary) NewOid(ctx context.Context) (zodb.Oid, error) {
	oid, err := p.st.NewOid(ctx)
	if err == nil {
		p.announceOids()
	}
	return oid, err
}

// SkipOids passes a promoted relay's oid skip (see fs.FileStorage.SkipOids)
// to the wrapped storage, if it has one.
func (p *Primary) SkipOids(n uint64) error {
	if sk, ok := p.st.(zodb.OidReserver); ok {
		return sk.SkipOids(n)
	}
	return nil
}

// ReadOnly delegates to the wrapped storage.
func (p *Primary) ReadOnly() bool { return p.st.ReadOnly() }

// Iterate delegates to the wrapped storage.
func (p *Primary) Iterate(ctx context.Context, start, stop zodb.Tid) (zodb.TxnIterator, error) {
	return p.st.Iterate(ctx, start, stop)
}

// UndoLog delegates to the wrapped storage.
func (p *Primary) UndoLog(ctx context.Context, first, last int, filter func(*zodb.UndoInfo) bool) ([]zodb.UndoInfo, error) {
	return p.st.UndoLog(ctx, first, last, filter)
}

// Begin starts a transaction on the wrapped storage. Its Finish wakes the
// streams after the wrapped Finish returned (the transaction is then
// fsynced on this host). After Shutdown has started, Begin fails with
// zodb.ErrClosed.
func (p *Primary) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	p.mu.Lock()
	closing := p.closing
	p.mu.Unlock()
	if closing {
		return nil, fmt.Errorf("primary: begin: %w", zodb.ErrClosed)
	}
	t, err := p.st.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return &txn{Txn: t, p: p}, nil
}

// txn wraps a transaction of the wrapped storage so that Finish wakes the
// streams (and, in sync mode, waits for the secondaries).
type txn struct {
	zodb.Txn
	p *Primary
}

// Vote votes the wrapped transaction. A vote that fails in the storage
// (a full disk fails commits at the vote, and monitoring must see them) is
// a failed commit for the commit observer; one refused for the client's
// own reasons is not: a conflict (which the client resolves or retries),
// a missing object (checkCurrentSerialInTransaction), a misuse of the
// protocol, a read-only storage, an undo that cannot be done.
func (t *txn) Vote(ctx context.Context) error {
	start := time.Now()
	err := t.Txn.Vote(ctx)
	if err != nil && !isClientError(err) {
		t.p.observeCommit(start, 0, err)
	}
	return err
}

// isClientError reports whether a failed vote is the client's to handle
// rather than the storage's failure.
func isClientError(err error) bool {
	for _, e := range []error{zodb.ErrConflict, zodb.ErrNotFound, zodb.ErrTransaction, zodb.ErrReadOnly, zodb.ErrUndo} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Finish finishes the wrapped transaction (fsynced on this host), then
// signals the new head. With Durability.Mode Sync it then waits until
// enough secondaries acknowledged the transaction; if they do not in
// time, the transaction stays committed here and the error wraps
// ErrNotReplicated (OnTimeout Fail), or the primary degrades to
// asynchronous replication with a loud log (OnTimeout Degrade).
func (t *txn) Finish(ctx context.Context) (zodb.Tid, error) {
	tid, wait, err := t.FinishDurable(ctx)
	if err != nil || wait == nil {
		return tid, err
	}
	return tid, wait(ctx)
}

// FinishDurable is Finish up to the wait for the secondaries, which it
// returns (zodb.SplitFinisher): the commit is fsynced here and streamed;
// the wait, nil unless Durability.Mode is Sync, applies Durability and
// observes the commit.
func (t *txn) FinishDurable(ctx context.Context) (zodb.Tid, func(context.Context) error, error) {
	start := time.Now()
	tid, err := t.Txn.Finish(ctx)
	if err != nil {
		t.p.observeCommit(start, tid, err)
		return tid, nil, err
	}
	t.p.recordCommit(tid)
	t.p.head.Notify()
	if t.p.opts.Durability.Mode != Sync {
		t.p.observeCommit(start, tid, nil)
		return tid, nil, nil
	}
	return tid, func(ctx context.Context) error {
		err := t.p.waitReplicated(ctx, tid)
		t.p.observeCommit(start, tid, err)
		return err
	}, nil
}
