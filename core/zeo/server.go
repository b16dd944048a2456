package zeo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// Storage is what the server serves: a ZODB storage that can iterate and
// undo. core/fs.FileStorage, core/primary.Primary and
// core/secondary.Secondary are ones.
type Storage interface {
	zodb.Storage
	zodb.Iterable
	zodb.Undoer
}

// Watcher is implemented by storages that commit transactions the server
// does not make, such as a replica applying its primary's stream. The
// server publishes each one to its clients as an invalidation. fn is
// called in tid order, after the transaction is visible to loads.
type Watcher interface {
	WatchCommits(fn func(tid zodb.Tid, oids []zodb.Oid))
}

// Sizer is implemented by storages that know their size in bytes (what
// get_info reports as "size" and ClientStorage.getSize returns).
type Sizer interface {
	Size() int64
}

// Oidser is implemented by storages that can list their oids in ascending
// order; record_iternext (IStorageCurrentRecordIteration) needs it.
type Oidser interface {
	Oids() []zodb.Oid
}

// Defaults for Options.
const (
	DefaultStorageName = "1"
	DefaultMaxTxnBytes = 1 << 30
	// FrameOverhead is what a message may carry beyond its data: a
	// storea's oid, serial and transaction id, pickled.
	FrameOverhead       = 1 << 20
	DefaultMaxQueue     = 256 << 20
	DefaultSpillBytes   = 16 << 20
	defaultHandshakeTTL = 30 * time.Second
)

// Options configure a Server. The zero value serves storage "1" with
// pickles over plain TCP.
type Options struct {
	// Logger receives connection and error events; nil discards them.
	Logger *slog.Logger
	// Name is the storage name clients register with; "" means "1"
	// (ClientStorage's default).
	Name string
	// Msgpack announces "M5" instead of "Z5". Clients follow the server's
	// choice; ZEO 5.0 clients cannot speak msgpack.
	Msgpack bool
	// ReadOnly refuses writable registrations even when the storage is
	// writable. A read-only storage is always served read-only.
	ReadOnly bool
	// TLS, when set, wraps every connection. Set ClientAuth to
	// tls.RequireAndVerifyClientCert to refuse clients without a
	// certificate signed by ClientCAs (ZEO's <ssl> authenticate).
	TLS *tls.Config
	// MaxFrame bounds one incoming message; 0 means MaxTxnBytes plus
	// FrameOverhead, so that a transaction the server accepts may hold an
	// object of any size up to it, as Python's server allows. A longer
	// message closes the connection (the client sees ClientDisconnected).
	// It applies to clients registered writable; before that, and to
	// read-only clients, which store nothing, a message is at most
	// FrameOverhead long, so that no one can make a read-only server
	// buffer a gigabyte.
	MaxFrame int
	// MaxTxnBytes bounds the data one transaction may send before vote;
	// 0 means DefaultMaxTxnBytes.
	MaxTxnBytes int64
	// TransactionTimeout, when positive, disconnects a client that holds
	// the commit lock (between a successful vote and tpc_finish or
	// tpc_abort) longer, aborting its transaction: ZEO's
	// transaction-timeout. Zero waits forever, as ZEO does by default.
	TransactionTimeout time.Duration
	// SpillBytes is how much of a transaction's data is kept in memory
	// before the rest goes to an unlinked temporary file in TempDir
	// until vote; 0 means DefaultSpillBytes.
	SpillBytes int64
	// TempDir holds spilled transactions; "" means os.TempDir().
	TempDir string
	// MaxQueue bounds the bytes queued for one client behind the batch
	// being written to it (which may be as large again, or one reply
	// larger than MaxQueue: a big object's load); a client that
	// does not read is disconnected past it (it reconnects and verifies
	// its cache). 0 means DefaultMaxQueue.
	MaxQueue int
	// SendTimeout drops a TCP client whose host leaves what the server
	// sent unacknowledged this long (netaddr.SetSendTimeout): a client
	// host that vanished would otherwise keep its session — and, between
	// vote and tpc_finish, the commit lock — for the kernel's ~15 minutes.
	// A client process that reads nothing that long is dropped too
	// (ClientStorage reads on a thread of its own, so it is stopped or
	// stuck); it reconnects and verifies its cache when it can.
	// 0 means netaddr.DefaultSendTimeout; negative keeps the kernel's.
	SendTimeout time.Duration
	// Fatal is called when the server cannot go on safely: an internal
	// error (a panic) serving one client left state that every client
	// shares unusable (see contain.go). The caller should log err
	// and end the process, whose restart recovers the storage. nil
	// panics with err, which ends the process as well.
	Fatal func(err error)

	// afterLoad, set by tests only, runs after a load's reply is computed
	// and before it is queued, under the publication lock, telling whether
	// the fast path (serveLoadBefore) computed it: tests widen there the
	// window in which an invalidation would overtake the reply if the lock
	// did not cover both, and see which path a load took.
	afterLoad func(fast bool)
}

// Server serves one storage to ZEO clients.
type Server struct {
	st    Storage
	opts  Options
	log   *slog.Logger
	codec Codec
	start time.Time

	// pub orders publication against loads (see the package doc). Its
	// write side is held while a transaction is published; its read side
	// while a load computes its answer and queues the reply.
	pub       sync.RWMutex
	published zodb.Tid          // last published tid; guarded by pub
	pubSignal chan struct{}     // closed and replaced when published advances; guarded by pub
	sessions  map[*session]bool // registered sessions; guarded by pub

	// pubTurn is closed once the last transaction that finished has been
	// published (or failed); the next finisher waits for it before
	// publishing. Changed by the commit lock's holder only.
	pubTurn chan struct{}

	// commit is the server's commit lock: one token, held from a
	// successful vote until tpc_finish hands the transaction to the
	// storage (its fsync and publication follow without the lock), or
	// until it is aborted.
	commit    chan struct{}
	lockedAt  atomic.Int64            // unix nanoseconds the lock was taken, 0 when free
	holder    atomic.Pointer[session] // the session holding the commit lock, nil when free
	timerMu   sync.Mutex              // guards lockTimer: the holder's goroutines may touch it at once
	lockTimer *time.Timer             // TransactionTimeout of the lock's holder; guarded by timerMu
	lockGen   uint64                  // counts the holds that started a lockTimer; guarded by timerMu

	stats stats

	// checkWithin bounds each step of the check after an internal
	// error (see contain); defaultCheckWithin unless a test shortens it.
	checkWithin time.Duration

	// life ends with Close: what outlives a client's connection (a
	// finished commit waiting for its secondaries) waits on it.
	life    context.Context
	endLife context.CancelFunc

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*session]bool // every open session, registered or not
	closed    bool
	wg        sync.WaitGroup
	// draining: Shutdown has begun; no transaction may begin, and a
	// session stops reading once it has none (see stopReading).
	draining atomic.Bool
}

// stats are the counters server_status reports.
type stats struct {
	loads, stores, commits, aborts, conflicts, resolved atomic.Int64
	active, waiting                                     atomic.Int64
	internalErrors                                      atomic.Int64
}

// NewServer returns a server for st. It starts serving on Listen or Serve.
func NewServer(st Storage, opts Options) *Server {
	if opts.Name == "" {
		opts.Name = DefaultStorageName
	}
	if opts.MaxTxnBytes <= 0 {
		opts.MaxTxnBytes = DefaultMaxTxnBytes
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = int(min(opts.MaxTxnBytes+FrameOverhead, maxPayload))
	}
	if opts.SpillBytes <= 0 {
		opts.SpillBytes = DefaultSpillBytes
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.SendTimeout == 0 {
		opts.SendTimeout = netaddr.DefaultSendTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		st:          st,
		opts:        opts,
		log:         log,
		codec:       PickleCodec,
		start:       time.Now(),
		checkWithin: defaultCheckWithin,
		published:   st.LastTransaction(),
		pubSignal:   make(chan struct{}),
		pubTurn:     closedChan(),
		sessions:    make(map[*session]bool),
		commit:      make(chan struct{}, 1),
		conns:       make(map[*session]bool),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	if opts.Msgpack {
		s.codec = MsgpackCodec
	}
	if w, ok := st.(Watcher); ok {
		// Watch first, then read the last tid: a transaction applied in
		// between is published either way.
		w.WatchCommits(s.Invalidate)
		s.pub.Lock()
		s.published = max(s.published, st.LastTransaction())
		s.pub.Unlock()
	}
	return s
}

// readOnly reports whether writable registrations are refused now (a
// promoted replica becomes writable).
func (s *Server) readOnly() bool { return s.opts.ReadOnly || s.st.ReadOnly() }

// Listen listens on addr (a port, host:port, or a unix socket path) and
// serves it in the background until Close. It returns the bound address.
func (s *Server) Listen(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := netaddr.Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("zeo: listen %s: %w", addr, err)
	}
	if err := s.Serve(ln); err != nil {
		ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// Serve accepts connections from ln in the background until Close (for
// inherited, e.g. systemd-activated, listeners).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return zodb.ErrClosed
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	go s.acceptLoop(ln)
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep going.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("zeo: accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if err := netaddr.SetSendTimeout(c, s.opts.SendTimeout); err != nil {
			s.log.Warn("zeo: "+err.Error(), "addr", c.RemoteAddr().String())
		}
		ss := newSession(s, c)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		if s.draining.Load() {
			// Accepted just before Shutdown closed the listener, but
			// after it took the sessions it ends: refused as a
			// connection a moment later would be (the client reconnects,
			// to the next server), not left for Shutdown to wait on.
			s.mu.Unlock()
			ss.close(nil)
			continue
		}
		s.conns[ss] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			ss.run()
			s.mu.Lock()
			delete(s.conns, ss)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops listening, disconnects every client (aborting their
// transactions) and waits for the sessions to end. It does not close the
// storage.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.endLife()
	for _, ln := range s.listeners {
		ln.Close()
	}
	for ss := range s.conns {
		ss.close(nil)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Shutdown is Close that first gives the transactions in progress until
// ctx is done to finish. It stops listening, refuses tpc_begin from then
// on, and ends each session once it has no transaction (its replies sent;
// ZEO clients reconnect by themselves, to the next server): only what was
// in flight when it began is waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*session, 0, len(s.conns))
	for ss := range s.conns {
		conns = append(conns, ss)
	}
	s.mu.Unlock()
	for _, ss := range conns {
		ss.tmu.Lock()
		if ss.txn == nil && ss.finishing == 0 {
			ss.stopReading("the server is shutting down")
		}
		ss.tmu.Unlock()
	}
	// Then every session ends by itself once its transaction is over and
	// its replies are out (a finished transaction's tid among them:
	// closing before it is sent would leave the client not knowing whether
	// it committed). A session's transaction ends before the session does.
	for s.Clients() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s.Close()
}

// endActive counts the end of a transaction of ss; while the server
// drains, ss then stops reading, unless it still has a transaction open
// or finishing. The caller holds ss.tmu.
func (s *Server) endActive(ss *session) {
	s.stats.active.Add(-1)
	if s.draining.Load() && ss.finishing == 0 && (ss.txn == nil || ss.txn.state == stDone) {
		ss.stopReading("the server is shutting down")
	}
}

// StorageWritable tells the server that its storage has become writable
// (a promoted secondary). A ZEO client with read_only_fallback that was
// refused a writable register here, and registered read-only instead,
// never registers again on the same connection: those sessions are ended
// (once what they are serving is answered) so that their clients
// reconnect and register writable. Clients that asked to read only are
// left alone.
func (s *Server) StorageWritable() {
	s.pub.Lock()
	var fellBack []*session
	for ss := range s.sessions {
		if ss.fellBack {
			fellBack = append(fellBack, ss)
		}
	}
	s.pub.Unlock()
	for _, ss := range fellBack {
		ss.stopReading("the storage is now writable; a read-only fallback client reconnects to write")
	}
	if len(fellBack) > 0 {
		s.log.Info("zeo: storage now writable; disconnecting read-only fallback clients so that they reconnect writable",
			"clients", len(fellBack))
	}
}

// Clients returns the number of connected sessions.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Invalidate publishes a transaction committed behind the server's back:
// every registered client gets invalidateTransaction(tid, oids). Calls
// must come in tid order, after the transaction is visible to loads.
func (s *Server) Invalidate(tid zodb.Tid, oids []zodb.Oid) {
	s.publish(tid, oids, nil, nil)
}

// publish queues the invalidation of tid for every registered session
// except self, then (still atomically with respect to loads) self's
// messages, and advances the published tid.
func (s *Server) publish(tid zodb.Tid, oids []zodb.Oid, self *session, selfMsgs func()) {
	s.pub.Lock()
	defer s.pub.Unlock()
	if tid <= s.published && self == nil {
		// Already covered by the tid the clients registered with.
		return
	}
	if tid > s.published {
		s.published = tid
		close(s.pubSignal)
		s.pubSignal = make(chan struct{})
	}
	var frames map[Codec][]byte
	for ss := range s.sessions {
		if ss == self {
			continue
		}
		if frames == nil {
			frames = make(map[Codec][]byte, 1)
		}
		f, ok := frames[ss.codec]
		if !ok {
			var err error
			f, err = ss.encode(oneWay("invalidateTransaction", tidValue(tid), oidList(oids)))
			if err != nil {
				s.log.Error("zeo: cannot encode an invalidation", "tid", tid, "err", err)
				continue
			}
			frames[ss.codec] = f
		}
		ss.queue(f)
	}
	if selfMsgs != nil {
		selfMsgs()
	}
}

// lastPublished returns the published tid; the caller holds pub.
func (s *Server) lastPublished() zodb.Tid { return s.published }

// publishedTid returns the published tid; the caller does not hold pub.
// What a request reads up to it is published, so the client has had its
// invalidations: the published tid only grows.
func (s *Server) publishedTid() zodb.Tid {
	s.pub.RLock()
	defer s.pub.RUnlock()
	return s.published
}

// waitPublished returns once tid is published, or once turn closes
// (turn is s.pubTurn read under the commit lock: every transaction
// finished before then has been published or has failed, so tid never
// will be: its fsync failed, or it did not come through this server), or
// with ctx's error. Votes call it holding their session's tmu: nothing
// that runs under pub may take a tmu, or a publication waits for it.
func (s *Server) waitPublished(ctx context.Context, tid zodb.Tid, turn <-chan struct{}) error {
	for {
		s.pub.RLock()
		done, ch := s.published >= tid, s.pubSignal
		s.pub.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-turn:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// acquireCommit takes the commit lock for holder, or returns ctx's error.
// With a TransactionTimeout, a holder that keeps the lock longer is
// disconnected, which aborts its transaction and frees the lock.
func (s *Server) acquireCommit(ctx context.Context, holder *session) error {
	s.stats.waiting.Add(1)
	defer s.stats.waiting.Add(-1)
	select {
	case s.commit <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.lockedAt.Store(time.Now().UnixNano())
	s.holder.Store(holder)
	if d := s.opts.TransactionTimeout; d > 0 {
		s.timerMu.Lock()
		defer s.timerMu.Unlock()
		s.lockGen++
		gen := s.lockGen
		s.lockTimer = time.AfterFunc(d, func() { s.lockExpired(gen, holder) })
	}
	return nil
}

// lockExpired runs when the TransactionTimeout timer of holder's hold
// number gen fires: it disconnects holder, unless the lock was released
// since. Timer.Stop in releaseCommit cannot stop a timer that has just
// fired, so the check is here, under the same lock: a holder that
// finished in time keeps its connection and gets its tpc_finish reply.
func (s *Server) lockExpired(gen uint64, holder *session) {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if s.lockTimer == nil || s.lockGen != gen {
		return
	}
	s.log.Error("zeo: a client held the commit lock too long; disconnecting it to abort its transaction",
		"peer", holder.peer, "label", holder.labelString(), "timeout", s.opts.TransactionTimeout)
	holder.close(nil)
}

// pauseLockTimer stops the TransactionTimeout clock of the lock's holder
// while it waits on the server (for a conflicting commit's publication);
// resume gives it the whole timeout again, unless the lock was released
// meanwhile.
func (s *Server) pauseLockTimer() (resume func()) {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	t := s.lockTimer
	if t == nil || !t.Stop() {
		return func() {}
	}
	return func() {
		s.timerMu.Lock()
		defer s.timerMu.Unlock()
		if s.lockTimer == t {
			t.Reset(s.opts.TransactionTimeout)
		}
	}
}

// releaseCommit frees the commit lock; only its holder calls it.
func (s *Server) releaseCommit() {
	s.timerMu.Lock()
	if s.lockTimer != nil {
		s.lockTimer.Stop()
		s.lockTimer = nil
	}
	s.timerMu.Unlock()
	s.lockedAt.Store(0)
	s.holder.Store(nil)
	<-s.commit
}

// size is the storage size for get_info and info messages.
func (s *Server) size() int64 {
	if sz, ok := s.st.(Sizer); ok {
		return sz.Size()
	}
	return 0
}

// writeFull writes p or fails; a helper for the handshake.
func writeFull(w io.Writer, p []byte) error {
	_, err := w.Write(p)
	return err
}

// Stats are a server's counters since it started.
type Stats struct {
	Clients           int   // connected sessions
	Loads             int64 // loadBefore and loadSerial calls
	Stores            int64 // storea, restorea and deleteObject calls, as ZEO counts them
	Commits           int64 // finished transactions
	Aborts            int64 // aborted transactions (tpc_abort, failed votes, disconnects)
	Conflicts         int64 // conflicts handed back to clients by vote
	ConflictsResolved int64 // conflicting objects stored again and committed
	ActiveTxns        int64 // transactions begun and not ended
	Waiting           int64 // votes waiting for the commit lock
	InternalErrors    int64 // connections closed by an internal error (a bug in zrs)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Clients:           s.Clients(),
		Loads:             s.stats.loads.Load(),
		Stores:            s.stats.stores.Load(),
		Commits:           s.stats.commits.Load(),
		Aborts:            s.stats.aborts.Load(),
		Conflicts:         s.stats.conflicts.Load(),
		ConflictsResolved: s.stats.resolved.Load(),
		ActiveTxns:        s.stats.active.Load(),
		Waiting:           s.stats.waiting.Load(),
		InternalErrors:    s.stats.internalErrors.Load(),
	}
}
