package primary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// writeBufferSize is the stream's write buffer: frames are batched up to
// this size while catching up and flushed whenever the stream is caught
// up, so memory per secondary is this buffer plus one transaction.
const writeBufferSize = 64 << 10

// errTidTooHigh: the secondary says it has a transaction newer than our
// last one (zc.zrs's TidTooHigh).
var errTidTooHigh = errors.New("secondary's last transaction is newer than this primary's (tid too high)")

// stream serves one connected secondary: handshake, catch up from the
// file, then live.
type stream struct {
	p     *Primary
	conn  net.Conn
	peer  string // the secondary's address, for logs and Status
	log   *slog.Logger
	since time.Time

	mu       sync.Mutex
	proto    string   // "" until the handshake is accepted; guarded by mu
	start    zodb.Tid // guarded by mu
	lastSent zodb.Tid // guarded by mu

	native  *nativeConn // non-nil for a zrs3 stream; set at the handshake, guarded by mu
	acked   zodb.Tid    // native: the last tid the secondary acknowledged; guarded by mu
	ackedAt time.Time   // when it did; guarded by mu

	// oidsSent is the oid reservation the last heartbeat carried (native
	// streams whose terms carry oids).
	oidsSent atomic.Uint64
}

func newStream(p *Primary, conn net.Conn) *stream {
	// A unix-socket client is unnamed: name it by the socket it came in on
	// and a number, so that two of them on one socket are two peers (in
	// the status, the logs and the metrics' peer label).
	peer := conn.RemoteAddr().String()
	if peer == "" || peer == "@" {
		peer = fmt.Sprintf("unix:%s#%d", conn.LocalAddr().String(), p.unixSeq.Add(1))
	}
	return &stream{p: p, conn: conn, peer: peer, since: time.Now(), log: p.log.With(logKeyPeer, peer)}
}

func (s *stream) status() (SecondaryStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := SecondaryStatus{
		Peer: s.peer, Proto: s.proto, Start: s.start,
		LastSent: s.lastSent, ConnectedSince: s.since,
	}
	if s.native != nil {
		ss.Compression, ss.Acks, ss.Acked, ss.AckedAt = s.native.compression, s.native.acks, s.acked, s.ackedAt
	}
	return ss, s.proto != ""
}

// run serves the connection until the secondary goes away, breaks the
// protocol, or the primary shuts down (after catching up). Problems are
// logged here; they end this stream only.
func (s *stream) run(ctx context.Context) {
	// A reader that ends the stream gives its reason as the cause.
	ctx, fail := context.WithCancelCause(ctx)
	cancel := func() { fail(nil) }
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	defer s.conn.Close()

	// A connection still in its handshake when the primary shuts down is
	// not waited for (up to HandshakeTimeout): it is closed.
	var hsMu sync.Mutex
	inHandshake, handshaken := true, make(chan struct{})
	go func() {
		select {
		case <-s.p.drain:
			hsMu.Lock()
			if inHandshake {
				s.conn.Close()
			}
			hsMu.Unlock()
		case <-handshaken:
		}
	}()
	start, err := s.handshake()
	hsMu.Lock()
	inHandshake = false
	hsMu.Unlock()
	close(handshaken)
	if err != nil {
		switch {
		case closed(s.p.drain):
			s.log.Debug("handshake ended: the primary is shutting down", logKeyErr, err)
		case isConnError(err):
			// Closed, reset or silent before the handshake was whole: a
			// health check, a port scan, a secondary that went away, a
			// ZEO client given this port (it waits for the server to
			// speak). Not a refusal: nothing was decided about it. Once
			// per host every refusalLogEvery at INFO, debug in between.
			s.p.incomplete.note(s.log, slog.LevelInfo, "connection ended before its handshake was complete",
				"since_last_logged", s.conn, "incomplete handshake", logKeyErr, err)
		default:
			if fn := s.p.refusalObs.Load(); fn != nil {
				(*fn)()
			}
			s.p.refusals.refused(s.log, s.conn, err)
		}
		return
	}
	s.log.Info("secondary connected", logKeyTid, start, logKeyLast, s.p.st.LastTransaction())

	gentle := make(chan struct{})
	var wg sync.WaitGroup
	if s.isNative() {
		wg.Go(func() {
			defer s.contain("reading acknowledgements", cancel)
			s.readAcks(fail)
		})
	} else {
		wg.Go(func() {
			defer s.contain("reading keep-alives", cancel)
			s.readKeepAlives(fail, gentle)
		})
	}
	err = s.send(ctx, start, gentle)
	// Gone: the secondary left or broke the connection, or the primary
	// is stopping (ctx ends either way). Any other error is the primary's
	// own, a transaction it cannot send, and repeats on every reconnection:
	// it is logged as an error.
	gone := ctx.Err() != nil || isConnError(err)
	if err == nil {
		// Ended after catching up: half-close, so the secondary reads
		// everything and sees the end, and keep reading its acks until it
		// closes (or the shutdown deadline cuts the connection): closing
		// with acks still arriving resets the connection and drops the
		// tail that was still in flight.
		if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			readerDone := make(chan struct{})
			go func() { wg.Wait(); close(readerDone) }()
			select {
			case <-readerDone:
			case <-ctx.Done():
			}
		}
	}
	cancel()
	wg.Wait()
	switch {
	case err == nil:
		s.log.Info("stream ended", logKeyTid, s.sent())
	case gone:
		if c := context.Cause(ctx); c != nil && !isConnError(err) {
			err = c // the send saw only the cancellation a reader caused
		}
		s.log.Info("secondary disconnected", logKeyTid, s.sent(), logKeyErr, err)
	default:
		s.log.Error("stream failed; the secondary will stop here on every reconnection until this is fixed",
			logKeyTid, s.sent(), logKeyErr, err)
	}
}

// isConnError reports whether err comes from the connection itself: the
// peer closed or reset it, a write timed out, or it was closed here.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// contain recovers a panic of one of the stream's goroutines (doing
// what), a bug in zrs: it logs the panic with its stack and ends this
// stream only, as a broken connection would; the secondary reconnects.
// It must be deferred directly. A stream shares little with the rest of
// the primary: the set of streams, which it leaves as it unwinds, and
// locks it never holds across code that could panic; the storage's
// iterator takes no lock while the stream reads it.
func (s *stream) contain(doing string, cancel context.CancelFunc) {
	r := recover()
	if r == nil {
		return
	}
	s.log.Error("internal error while "+doing+"; closing this secondary's connection (a bug in zrs: please report it with this log)",
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if fn := s.p.internalObs.Load(); fn != nil {
		(*fn)()
	}
	s.conn.Close()
	if cancel != nil {
		cancel()
	}
}

func (s *stream) sent() zodb.Tid {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSent
}

// handshake reads the protocol name and the secondary's last tid, and
// decides whether to serve it.
func (s *stream) handshake() (zodb.Tid, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.p.opts.HandshakeTimeout))
	defer s.conn.SetReadDeadline(time.Time{})
	proto, start, err := zrsproto.ReadAnyHandshake(s.conn)
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	if proto == zrsproto.Proto3 {
		return start, s.nativeHandshake(start)
	}
	s.conn.SetReadDeadline(time.Time{})
	if proto != zrsproto.Proto20 && proto != zrsproto.Proto21 {
		return 0, fmt.Errorf("handshake: invalid protocol %q (want %s or %s)", proto, zrsproto.Proto20, zrsproto.Proto21)
	}
	if last := s.p.st.LastTransaction(); start > last {
		return 0, fmt.Errorf("%w: secondary has %s (%s), primary's last is %s", errTidTooHigh, start, start.TimeString(), last)
	}
	if err := s.checkHistory(s.p.ctx, start); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.proto, s.start, s.lastSent = proto, start, start
	s.mu.Unlock()
	return start, nil
}

// errDivergedZRS2: a zrs2 secondary's last tid lies inside this primary's
// history but is not one of its transactions, and no pack can explain it.
var errDivergedZRS2 = errors.New("history diverged")

// checkHistory decides whether a zrs2 secondary whose last transaction is
// start (not above ours) may be streamed. zrs2 sends nothing but that tid,
// so a tid we do not have is all there is to tell a diverged secondary (an
// old primary brought back after a failover, with commits the new primary
// never had) from one whose transaction was removed by a pack.
//
// Only a pack can remove a transaction: zrs never does (it cannot pack),
// but the file may have been packed by ZODB before zrs served it, and a
// zc.zrs secondary of it must keep working. A ZODB FileStorage pack marks
// every transaction it keeps from before the pack time "p", and those
// come first in the file; so a file whose first transaction is not
// packed was never packed, and in it a missing tid after our first one
// cannot be a pack's doing: that secondary has transactions we lack, and
// streaming ours after them would make a file that belongs to neither
// history. It is refused (the connection is closed: zrs2 has no way to
// say why; a zrs secondary in "auto" then asks with zrs3, which does).
// In a packed file, or below our first tid (where zrs2 cannot tell
// another database either), a missing tid is streamed from the next
// transaction as zc.zrs does, with a warning.
func (s *stream) checkHistory(ctx context.Context, start zodb.Tid) error {
	if start == 0 {
		return nil
	}
	info, err := s.p.txnAt(ctx, start)
	if err != nil {
		return fmt.Errorf("handshake: reading this primary's transaction %s: %w", start, err)
	}
	if info != nil {
		return nil
	}
	first, err := s.p.FirstTxnMeta(ctx)
	if err != nil {
		return fmt.Errorf("handshake: reading this primary's first transaction: %w", err)
	}
	if first != nil && first.Tid < start && first.Status != zodb.StatusPacked {
		return fmt.Errorf("%w at tid %s (%s): the zrs2 secondary's last transaction is not in this primary's history, "+
			"which was never packed, so the secondary has transactions this primary lacks "+
			"(it was probably a primary before a failover); restore it from this primary or from a backup "+
			"(move its Data.fs aside and let it replicate from scratch)", errDivergedZRS2, start, start.TimeString())
	}
	s.log.Warn("the secondary's last transaction is not in this primary's history "+
		"(packed away, or a diverged history zrs2 cannot detect); streaming from the next one", logKeyTid, start)
	return nil
}

// readKeepAlives reads what the secondary sends after the handshake: only
// empty keep-alive frames are allowed. Anything else ends the stream
// gently (catch up, then close: close(gentle)); a read error (the
// secondary went away) cuts it (cancel).
func (s *stream) readKeepAlives(fail context.CancelCauseFunc, gentle chan struct{}) {
	for {
		b, err := zrsproto.ReadFrame(s.conn, zrsproto.HandshakeLimit)
		switch {
		case err == nil && len(b) == 0:
			s.log.Debug("keep-alive")
			continue
		case err == nil:
			s.log.Error("too many messages: secondary sent a non-empty frame after the handshake; closing after catching up", "len", len(b))
			close(gentle)
		default:
			s.readFailed(err)
			fail(err)
		}
		return
	}
}

// readFailed logs why reading from the secondary failed, unless the
// secondary went away (a closed or reset connection): that is no error of
// the primary's, and the stream's end logs it as a disconnection, with
// the read error (the cancellation's cause) as its reason.
func (s *stream) readFailed(err error) {
	if !isConnError(err) {
		s.log.Error("reading from secondary", logKeyErr, err)
	}
}

// send streams every committed transaction after start, then waits for
// the next commit, until ctx ends or (after catching up) the stream is
// asked to end gently or the primary shuts down.
//
// Each round re-creates the iterator from the last tid sent: an iterator
// sees what was committed when it was created, and the storage finds a
// near-end position without scanning. Memory stays one transaction plus
// the write buffer however far behind the secondary is.
func (s *stream) send(ctx context.Context, start zodb.Tid, gentle <-chan struct{}) error {
	out, err := s.newSink(start)
	if err != nil {
		return err
	}
	defer out.Close()
	var beat <-chan time.Time
	if s.isNative() {
		t := time.NewTicker(s.p.opts.HeartbeatInterval)
		defer t.Stop()
		beat = t.C
	}
	next := start + 1
	prog := newCatchUpProgress(s.p, s.log)
	for {
		// Whether to end is decided before catching up, so that the last
		// round starts after the request to end: it sends everything
		// committed before that request.
		wake, ending := s.p.head.C(), closed(gentle) || closed(s.p.drain)
		if err := s.catchUp(ctx, out, &next, prog); err != nil {
			return err
		}
		prog.caughtUp()
		if s.oidsGrew() {
			// Between transactions: the secondary records the new
			// reservation now, not at the next idle heartbeat.
			if err := out.Heartbeat(s.heartbeat()); err != nil {
				return fmt.Errorf("writing to secondary: %w", err)
			}
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing to secondary: %w", err)
		}
		if ending {
			return nil
		}
		if err := s.wait(ctx, out, wake, gentle, beat); err != nil {
			return err
		}
	}
}

// wait returns when there may be something to send (a commit, a request
// to end) or ctx ends; meanwhile it sends a heartbeat on every beat.
func (s *stream) wait(ctx context.Context, out sink, wake, gentle <-chan struct{}, beat <-chan time.Time) error {
	for {
		select {
		case <-wake:
		case <-gentle:
		case <-s.p.drain:
		case <-ctx.Done():
			return ctx.Err()
		case <-beat:
			if err := out.Heartbeat(s.heartbeat()); err != nil {
				return fmt.Errorf("writing to secondary: %w", err)
			}
			continue
		}
		return nil
	}
}

// catchUp writes every committed transaction with tid >= *next and
// advances *next past them.
func (s *stream) catchUp(ctx context.Context, sw sink, next *zodb.Tid, prog *catchUpProgress) error {
	it, err := s.p.st.Iterate(ctx, *next, zodb.MaxTid)
	if err != nil {
		return fmt.Errorf("iterating from %s: %w", *next, err)
	}
	defer it.Close()
	// Each transaction is written out before the next is read, so the
	// iterator may reuse one buffer: catching up then makes no garbage the
	// size of the file, which keeps the primary's memory flat.
	if r, ok := it.(interface{ ReuseBuffers(bool) }); ok {
		r.ReuseBuffers(true)
	}
	beats := s.beatWhileReading(sw)
	for {
		info, err := beats.next(ctx, it)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading transaction after %s: %w", *next-1, err)
		}
		if err := sw.WriteTxn(info); err != nil {
			return fmt.Errorf("sending transaction %s (offset %d): %w", info.Tid, info.Pos, err)
		}
		*next = info.Tid + 1
		prog.sent(info.Pos)
		s.mu.Lock()
		s.lastSent = info.Tid
		s.mu.Unlock()
	}
}

// readBeats keeps a native secondary from taking the primary for dead
// while one transaction takes long to read (a large one, a slow disk):
// a heartbeat — allowed between transactions, and nothing of this one is
// written before it is read whole — goes out every heartbeat interval
// until the read returns. zrs2 streams have no heartbeats. One timer
// serves a whole catch-up, re-armed for each read.
type readBeats struct {
	s       *stream
	sw      sink
	iv      time.Duration
	timer   *time.Timer
	mu      sync.Mutex // the sink: the timer's heartbeats against the stream's writes
	reading bool       // guarded by mu
	err     error      // a heartbeat's write error; guarded by mu
}

func (s *stream) beatWhileReading(sw sink) *readBeats {
	if !s.isNative() {
		return nil
	}
	b := &readBeats{s: s, sw: sw, iv: s.p.opts.HeartbeatInterval}
	b.timer = time.AfterFunc(b.iv, b.beat)
	b.timer.Stop()
	return b
}

// beat sends a heartbeat if a read is still going on, and re-arms.
func (b *readBeats) beat() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.reading || b.err != nil {
		return
	}
	if b.err = b.sw.Heartbeat(b.s.heartbeat()); b.err == nil {
		b.err = b.sw.Flush()
	}
	if b.err == nil {
		b.timer.Reset(b.iv)
	}
}

// next is it.Next with heartbeats while it runs.
func (b *readBeats) next(ctx context.Context, it zodb.TxnIterator) (*zodb.TxnInfo, error) {
	if b == nil {
		return it.Next(ctx)
	}
	b.mu.Lock()
	b.reading = true
	b.timer.Reset(b.iv)
	b.mu.Unlock()
	info, err := it.Next(ctx)
	b.mu.Lock()
	b.reading = false
	b.timer.Stop()
	berr := b.err
	b.mu.Unlock()
	if err == nil && berr != nil {
		return nil, fmt.Errorf("writing a heartbeat to the secondary: %w", berr)
	}
	return info, err
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
