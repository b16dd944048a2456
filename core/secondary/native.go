package secondary

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// Protocol selects what a secondary speaks to its primary.
type Protocol string

const (
	// ProtoAuto (the zero value) tries the native protocol and falls back
	// to zrs2.0 for a primary that closes the connection on "zrs3" (a
	// zc.zrs primary), retrying native at most every NativeRetry. A
	// primary that answered zrs3 once is a zrs primary: it is never
	// fallen back from (zrs2 cannot detect a diverged history).
	ProtoAuto Protocol = ""
	// ProtoZRS2 speaks zrs2.0 only, as zc.zrs.
	ProtoZRS2 Protocol = "zrs2"
	// ProtoNative speaks zrs3 only: a primary that does not is an error.
	// Sync durability on the primary needs it (zrs2 has no
	// acknowledgements).
	ProtoNative Protocol = "zrs3"
)

// ParseProtocol parses "auto", "zrs2" or "zrs3".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "auto", "":
		return ProtoAuto, nil
	case string(ProtoZRS2), string(ProtoNative):
		return Protocol(s), nil
	}
	return "", fmt.Errorf("protocol %q: want auto, zrs2 or zrs3", s)
}

// Native protocol defaults.
const (
	// NativeRetry is how long a secondary in ProtoAuto keeps using zrs2.0
	// for a primary that refused zrs3 before trying zrs3 again, sooner
	// when a zrs2.0 connection is closed before anything was received (a
	// zrs primary refusing it says why over zrs3). A zrs2.0 connection
	// still open then is ended: a zrs primary that closed two handshakes
	// while restarting must not be spoken zrs2.0 to (no heartbeats, no
	// acknowledgements for sync durability) for as long as a connection
	// lives. Each fall-back in a row doubles the period, up to
	// maxNativeRetryShift doublings, so that a zc.zrs primary sees a zrs3
	// handshake ever less often.
	NativeRetry = 10 * time.Minute
	// maxNativeRetryShift caps the doublings of NativeRetry (10 min up to
	// about 5 h).
	maxNativeRetryShift = 5
	// IdleHeartbeats: with Options.IdleTimeout zero, a native secondary
	// reconnects after this many of the primary's heartbeat intervals
	// without receiving anything.
	IdleHeartbeats = 3
	// maxHeartbeatMillis bounds the interval a welcome may announce when
	// the idle time is derived from it (an hour; more would overflow).
	maxHeartbeatMillis = 3600_000
	// handshakeTimeout bounds the native handshake.
	handshakeTimeout = 30 * time.Second
)

// errNotNative: the primary closed the connection on "zrs3" without
// answering, as zc.zrs does.
var errNotNative = errors.New("the primary closed the connection on zrs3 without answering (a zc.zrs primary?)")

// nativeState is what a Secondary remembers about its primary's protocol.
type nativeState struct {
	mu            sync.Mutex
	fallbackUntil time.Time // use zrs2.0 until then; guarded by mu
	fellBack      bool      // the fall-back was logged; guarded by mu
	fallbacks     int       // fall-backs in a row since zrs3 was last answered; guarded by mu
	closedOnce    bool      // the last zrs3 handshake was closed unanswered; guarded by mu
	spokeNative   bool      // the primary answered a zrs3 handshake in this process; guarded by mu
	heldNative    bool      // staying on zrs3 after closed handshakes was logged; guarded by mu
	proto         string    // protocol of the current or last connection; guarded by mu
	primaryLast   zodb.Tid  // the primary's last tid from its welcome or last heartbeat; guarded by mu
	heardAt       time.Time // when that was received; guarded by mu

	refusal        string    // the last refusal's reason; guarded by mu
	refusalLogged  time.Time // when it was last logged as an error; guarded by mu
	refusalRepeats int       // refusals since, logged at debug only; guarded by mu
}

// wouldFallBack reports whether another closed zrs3 handshake makes
// the secondary fall back to zrs2.0 (see fallBack).
func (n *nativeState) wouldFallBack() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.spokeNative && n.closedOnce
}

// forgetClosed forgets a zrs3 handshake closed unanswered.
func (n *nativeState) forgetClosed() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closedOnce = false
}

// NativeStatus is what the native protocol tells about the primary.
type NativeStatus struct {
	Proto       string    // "zrs3", "zrs2.0", or "" before the first connection
	PrimaryLast zodb.Tid  // the primary's last tid (welcome or heartbeat); 0 with zrs2
	HeardAt     time.Time // when it was received
}

// NativeStatus returns the protocol state.
func (s *Secondary) NativeStatus() NativeStatus {
	n := &s.nat
	n.mu.Lock()
	defer n.mu.Unlock()
	return NativeStatus{Proto: n.proto, PrimaryLast: n.primaryLast, HeardAt: n.heardAt}
}

func (n *nativeState) heard(last zodb.Tid) {
	n.mu.Lock()
	n.primaryLast, n.heardAt = last, time.Now()
	n.mu.Unlock()
}

// refusalLogEvery: a refusal that repeats (it does until an operator
// acts) is an error once per this period, and debug in between.
const refusalLogEvery = 10 * time.Minute

// logRefusal logs the primary's refusal of this secondary: as an error
// the first time and once per refusalLogEvery for the same reason, with
// the number of refusals not shown since.
func (n *nativeState) logRefusal(log *slog.Logger, reason string, start zodb.Tid) {
	now := time.Now()
	n.mu.Lock()
	again := reason == n.refusal && now.Sub(n.refusalLogged) < refusalLogEvery
	if again {
		n.refusalRepeats++
	}
	repeats := 0
	if reason == n.refusal {
		repeats = n.refusalRepeats
	}
	if !again {
		n.refusal, n.refusalLogged, n.refusalRepeats = reason, now, 0
	}
	n.mu.Unlock()
	if again {
		log.Debug("the primary refuses this secondary again: "+reason, logKeyTid, start)
		return
	}
	attrs := []any{logKeyTid, start}
	if repeats > 0 {
		attrs = append(attrs, "refused_since_last_logged", repeats)
	}
	log.Error("the primary refuses this secondary: "+reason, attrs...)
}

// retryNative ends a fall-back to zrs2.0: the next connection tries zrs3.
func (n *nativeState) retryNative() {
	n.mu.Lock()
	n.fallbackUntil = time.Time{}
	n.mu.Unlock()
}

// fallbackEnd is when the current fall-back to zrs2.0 ends (zero if none).
func (n *nativeState) fallbackEnd() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fallbackUntil
}

// errRetryNative ends a zrs2.0 connection when its fall-back period is
// over, so that the next connection tries zrs3.
var errRetryNative = errors.New("the zrs2.0 fall-back period is over; reconnecting to try zrs3")

func (n *nativeState) setProto(p string) {
	n.mu.Lock()
	n.proto = p
	n.mu.Unlock()
}

// useNative says whether the next connection speaks zrs3.
func (s *Secondary) useNative() bool {
	switch s.opts.Protocol {
	case ProtoZRS2:
		return false
	case ProtoNative:
		return true
	}
	s.nat.mu.Lock()
	defer s.nat.mu.Unlock()
	return !time.Now().Before(s.nat.fallbackUntil)
}

// fallBack switches to zrs2.0 for NativeRetry, logging it the first time,
// once two zrs3 handshakes in a row were closed unanswered: a zc.zrs
// primary closes every one, while a zrs primary that was stopping or
// restarting closes one, and falling back for NativeRetry then would
// cost acknowledgements (sync durability) and compression for nothing.
//
// A primary that answered zrs3 before is a zrs primary, however many
// handshakes it closes (stopping, crash-looping): it is never fallen back
// from. Over zrs2 it could not refuse this secondary if their histories
// diverged (a pack of its file can hide that), so its transactions could
// be appended to ones it never had. The secondary's address is fixed, so
// "the primary" is the same address for the life of the process. This is
// kept in memory only: a node that has to be protected after a restart
// (an old primary brought back) never spoke zrs3 to its new primary
// before, so nothing on disk would know it; there the primary's own
// check (it refuses a zrs2 start tid it lacks in a never-packed file) and
// --protocol zrs3 are the protection.
func (s *Secondary) fallBack() {
	n := &s.nat
	n.mu.Lock()
	if n.spokeNative {
		first := !n.heldNative
		n.heldNative = true
		n.mu.Unlock()
		if first {
			s.log.Info("the primary closed the zrs3 handshake unanswered, but it answered zrs3 before: it is a zrs primary " +
				"(stopping or restarting?); staying on zrs3, since zrs2.0 could not detect a diverged history")
		} else {
			s.log.Debug("the primary closed the zrs3 handshake unanswered; staying on zrs3")
		}
		return
	}
	if !n.closedOnce {
		n.closedOnce = true
		n.mu.Unlock()
		s.log.Debug("the primary closed the zrs3 handshake unanswered; trying zrs3 once more before falling back")
		return
	}
	n.closedOnce = false
	retry := s.opts.NativeRetry << min(n.fallbacks, maxNativeRetryShift)
	n.fallbacks++
	n.fallbackUntil = time.Now().Add(retry)
	first := !n.fellBack
	n.fellBack = true
	n.mu.Unlock()
	if first {
		s.log.Warn("the primary does not speak zrs3 (a zc.zrs primary?); replicating with zrs2.0 "+
			"(no identity or divergence check, no compression, no acknowledgements)", "retry_native_after", retry)
	} else {
		s.log.Debug("the primary still does not speak zrs3; using zrs2.0", "retry_native_after", retry)
	}
}

// nativeCycle is one zrs3 connection on conn: handshake, then apply
// transactions and acknowledge them until something fails. Like cycle,
// it always returns a non-nil error.
func (s *Secondary) nativeCycle(ctx context.Context, conn net.Conn, markStable func()) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		stop()
		conn.Close()
		wg.Wait()
	}()

	start := s.st.LastTransaction()
	wel, own, err := s.nativeHandshake(ctx, conn, start)
	if err != nil {
		return err
	}
	if s.opts.NoCompression && wel.Compression != "" {
		return fmt.Errorf("the primary chose %s compression, which this secondary did not offer (compression is off)", wel.Compression)
	}
	s.nat.setProto(zrsproto.Proto3)
	s.nat.heard(wel.Last)
	s.log.Debug("connected with zrs3", logKeyTid, start, "welcome", wel.String())
	s.firstConnect.Do(func() {
		s.log.Info("connected to primary", logKeyTid, start, "proto", zrsproto.Proto3, "compression", wel.Compression, "checksum", wel.Checksum)
	})
	if own.IsZero() && !wel.Database.IsZero() {
		s.log.Info("empty secondary: adopting the primary's database", "database", wel.Database.String())
	}
	s.setConnected(true)
	defer s.setConnected(false)
	timer := time.AfterFunc(stableAfter, markStable)
	defer timer.Stop()

	idle := s.opts.IdleTimeout
	if idle <= 0 {
		idle = IdleHeartbeats * time.Duration(min(max(wel.HeartbeatMillis, 100), maxHeartbeatMillis)) * time.Millisecond
	}
	ir := newIdleReader(conn, idle)
	var nr *zrsproto.NativeReader
	err = s.guard("starting to read the primary's stream", func() (err error) {
		nr, err = zrsproto.NewNativeReader(bufio.NewReaderSize(ir, readBufferSize), start, wel.Terms())
		return err
	})
	if err != nil {
		return err
	}
	defer nr.Close()
	var acked atomic.Uint64
	ackc := make(chan struct{}, 1)
	wg.Go(func() { s.nativeWrites(ctx, cancel, conn, &acked, ackc) })
	// Each transaction is acknowledged once fsynced, in tid order.
	a := s.newApplier(ctx, cancel, func(tid zodb.Tid) {
		acked.Store(uint64(tid))
		select {
		case ackc <- struct{}{}:
		default: // an acknowledgement is pending; it will carry this tid
		}
	})
	defer func() { err = a.wait(err) }() // before the connection is torn down

	defer s.obs.setIdle(false)
	received := start
	for applied := 0; ; applied++ {
		var info *zodb.TxnInfo
		var hb *zrsproto.Heartbeat
		err := s.guard("reading from the primary's stream", func() (err error) {
			info, hb, err = nr.Next()
			return err
		})
		if err != nil {
			return s.readError(ctx, err, ir, "nothing, not even a heartbeat,")
		}
		ir.progressed()
		if hb != nil {
			s.nat.heard(hb.Last)
			s.noteOids(hb.Oids)
			// A heartbeat comes only between transactions: having
			// received the primary's last tid means nothing more is
			// coming (caught up once it is committed here).
			a.setReceivedAll(received >= hb.Last)
			continue
		}
		a.setReceivedAll(false)
		if err := a.apply(info); err != nil {
			return err
		}
		received = info.Tid
		ir.progressed() // applying is not the stream's idleness
		markStable()
	}
}

// noteOids records the primary's oid reservation from a heartbeat (0: the
// heartbeat carries none), so that this node, as a primary after a
// promotion or a restart, hands none of those oids out again. The primary
// sends it again with every heartbeat; a failed record is logged once
// per reservation. The storage records only a reservation that grew.
func (s *Secondary) noteOids(high zodb.Oid) {
	n, ok := s.st.(zodb.OidReserver)
	if !ok || high == 0 || high == s.oidsNoted {
		return
	}
	s.oidsNoted = high
	if err := n.NoteOidReservation(high); err != nil {
		s.log.Warn("cannot record the primary's new oids; if this node becomes a primary, ZEO clients of the old one may meet conflicts on new objects",
			"oids", high, logKeyErr, err)
	}
}

// readError turns a stream read error from ir into the cycle's error;
// silence is what the primary sent before a timeout.
func (s *Secondary) readError(ctx context.Context, err error, ir *idleReader, silence string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx) // a failed write to the primary says why
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if ir.stalled {
			return fmt.Errorf("a message from the primary stopped making progress: %d bytes of it in %v, "+
				"less than %d in the last %v; reconnecting", ir.since, time.Since(ir.first).Round(time.Millisecond), ir.minWindow, ir.idle)
		}
		return fmt.Errorf("the primary sent %s for %v; reconnecting", silence, ir.idle)
	}
	return fmt.Errorf("reading from primary: %w", err)
}

// nativeHandshake sends zrs3, the start tid and the hello, and reads the
// welcome. It returns the welcome and our own identity.
func (s *Secondary) nativeHandshake(ctx context.Context, conn net.Conn, start zodb.Tid) (*zrsproto.Welcome, zrsproto.Identity, error) {
	hello, err := s.hello(ctx, start)
	if err != nil {
		return nil, zrsproto.Identity{}, fmt.Errorf("handshake: reading the local file: %w", err)
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	var wel *zrsproto.Welcome
	answer := newFirstBytes(conn)
	err = s.guard("exchanging the handshake with the primary", func() (err error) {
		wel, err = s.exchangeHellos(conn, answer, start, hello)
		return err
	})
	if ctx.Err() != nil {
		return nil, hello.Database, ctx.Err()
	}
	if err != nil {
		answer.more(conn, 100*time.Millisecond)
		if what := describePeer(answer.buf); what != "" {
			// Not a primary at all: this is no evidence of a zc.zrs
			// primary closing zrs3 handshakes (a ZEO server's close
			// sometimes swallows its greeting, and must not count
			// towards a fall-back with the one before).
			s.nat.forgetClosed()
			return nil, hello.Database, s.notReplicationPort(what)
		}
	}
	if err == io.EOF || isReset(err) {
		// Closed unanswered: a zc.zrs primary, or a ZEO server whose
		// greeting the close swallowed (a reset discards what was not
		// read yet). Before falling back, one more connection that says
		// nothing tells them apart: a ZEO server speaks first.
		if s.opts.Protocol == ProtoAuto && s.nat.wouldFallBack() {
			if what := s.probeUnasked(ctx); what != "" {
				s.nat.forgetClosed()
				return nil, hello.Database, s.notReplicationPort(what)
			}
		}
		if s.opts.Protocol == ProtoAuto {
			s.fallBack()
		}
		return nil, hello.Database, errNotNative
	}
	if err != nil {
		return nil, hello.Database, fmt.Errorf("handshake: %w", err)
	}
	s.nat.mu.Lock()
	s.nat.closedOnce = false
	s.nat.spokeNative, s.nat.heldNative = true, false
	s.nat.fallbacks = 0
	s.nat.fallbackUntil = time.Time{}
	s.nat.mu.Unlock()
	if wel.Refused != "" {
		s.nat.logRefusal(s.log, wel.Refused, start)
		return nil, hello.Database, fmt.Errorf("refused by the primary: %s", wel.Refused)
	}
	if !hello.Database.IsZero() && wel.Database != hello.Database {
		err := fmt.Errorf("the primary serves a different database (%s; this secondary's is %s): not replicating from it; "+
			"point this secondary at its own primary, or move its Data.fs aside to replicate this database from scratch",
			wel.Database, hello.Database)
		s.log.Error(err.Error())
		return nil, hello.Database, err
	}
	return wel, hello.Database, nil
}

// exchangeHellos sends the handshake on conn and reads the answer from r.
func (s *Secondary) exchangeHellos(conn net.Conn, r io.Reader, start zodb.Tid, hello *zrsproto.Hello) (*zrsproto.Welcome, error) {
	if err := zrsproto.WriteNativeHandshake(conn, start, hello); err != nil {
		return nil, err
	}
	return zrsproto.ReadWelcome(r)
}

// isReset reports a connection reset or broken pipe, which is how a
// primary closing on our unread hello frame can look.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// hello describes the local file: its identity and its last transaction.
func (s *Secondary) hello(ctx context.Context, start zodb.Tid) (*zrsproto.Hello, error) {
	_, oids := s.st.(zodb.OidReserver)
	h := &zrsproto.Hello{Version: zrsproto.NativeVersion, Acks: true, Node: s.opts.NodeID, Oids: oids}
	h.Checksums = []string{zrsproto.ChecksumXXH64}
	if !s.opts.NoCompression {
		h.Compression = []string{zrsproto.CompressionZstd}
	}
	if start == 0 {
		return h, nil
	}
	id, err := s.identity(ctx)
	if err != nil {
		return nil, err
	}
	h.Database = id
	last, err := s.txnFrom(ctx, start)
	if err != nil {
		return nil, err
	}
	if last != nil && last.Tid == start {
		h.Position = zrsproto.PositionOf(last)
	}
	return h, nil
}

// identity returns the local database's identity, the zero Identity while
// it is empty. Once known it is kept: reading the first transaction on
// every connection would cost as much as that transaction is large.
func (s *Secondary) identity(ctx context.Context) (zrsproto.Identity, error) {
	if id := s.ident.Load(); id != nil {
		return *id, nil
	}
	var first *zodb.TxnInfo
	var err error
	if f, ok := s.st.(interface {
		FirstTxnMeta(context.Context) (*zodb.TxnInfo, error)
	}); ok {
		first, err = f.FirstTxnMeta(ctx) // metadata only: no data read
	} else {
		first, err = s.txnFrom(ctx, 0)
	}
	if err != nil || first == nil {
		return zrsproto.Identity{}, err
	}
	id := zrsproto.IdentityOf(first)
	s.ident.Store(&id)
	return id, nil
}

// txnFrom returns the first transaction with tid >= from, nil if none.
func (s *Secondary) txnFrom(ctx context.Context, from zodb.Tid) (*zodb.TxnInfo, error) {
	it, err := s.st.Iterate(ctx, from, zodb.MaxTid)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	info, err := it.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	return info, err
}

// nativeWrites is the only writer on a native connection after the
// handshake: an acknowledgement of the last applied tid whenever ackc
// fires (several commits in between are coalesced into one), and empty
// keep-alives every Options.KeepAlive. A failed write cancels the cycle.
func (s *Secondary) nativeWrites(ctx context.Context, cancel context.CancelCauseFunc, conn net.Conn, acked *atomic.Uint64, ackc <-chan struct{}) {
	defer s.containWriter("sending acknowledgements and keep-alives to the primary", cancel)
	var keep <-chan time.Time
	if s.opts.KeepAlive > 0 {
		t := time.NewTicker(s.opts.KeepAlive)
		defer t.Stop()
		keep = t.C
	}
	var sent uint64
	for {
		var frame []byte
		select {
		case <-ctx.Done():
			return
		case <-keep:
			frame = []byte{}
		case <-ackc:
			tid := acked.Load()
			if tid == sent {
				continue
			}
			sent, frame = tid, zrsproto.EncodeAck(zodb.Tid(tid))
		}
		if err := zrsproto.WriteFrame(conn, frame); err != nil {
			what := "an acknowledgement"
			if len(frame) == 0 {
				what = "a keep-alive"
			}
			cancel(fmt.Errorf("sending %s to the primary: %w", what, err))
			return
		}
	}
}

// idleReader reads from conn, failing with os.ErrDeadlineExceeded when
// the primary goes quiet for idle (0: no limit) or a message stops
// making progress (see minBytesPerIdle).
type idleReader struct {
	conn net.Conn
	idle time.Duration
	// Used by the reading goroutine only: since is how many bytes were
	// read since the last whole message (a transaction or a heartbeat) was
	// received, first when the first of them came; a message in progress
	// is judged by windows of idle, win the current one's start and
	// winBytes what it brought.
	since    int64
	first    time.Time
	win      time.Time
	winBytes int64
	// stalled says the last read failed because a message in progress
	// brought too little in a window, not because nothing came.
	stalled   bool
	minWindow int64 // bytes a window must bring (see minBytesPerIdle)
}

// newIdleReader returns an idleReader on conn.
func newIdleReader(conn net.Conn, idle time.Duration) *idleReader {
	return &idleReader{conn: conn, idle: idle, minWindow: max(minBytesPerIdle, int64(idle.Seconds()*minBytesPerSecond))}
}

// A message in progress must bring minWindow bytes in every idle period,
// the larger of minBytesPerIdle and minBytesPerSecond over the period,
// before the connection counts as stuck. Bytes alone are not liveness: a
// corrupted length prefix (uncompressed streams) makes the reader wait for
// a frame that never ends while heartbeats trickle in (17 bytes each,
// three per idle period: 8.5 bytes/s at the default 2 s interval). 1 KiB
// per idle period is 170 bytes/s with the default 6 s, and a long idle
// time still asks for 200 bytes/s: far below any working link, so a slow
// link that keeps sending is never cut, however long its messages.
const (
	minBytesPerIdle   = 1 << 10
	minBytesPerSecond = 200
)

// progressed records that a whole message was received (or applied).
func (r *idleReader) progressed() { r.since = 0 }

// Read reads with a deadline: idle without any byte and, while a message
// is in progress, the end of each window of idle that brought less than
// minWindow of it.
func (r *idleReader) Read(p []byte) (int, error) {
	if r.idle <= 0 {
		n, err := r.conn.Read(p)
		r.since += int64(n)
		return n, err
	}
	for {
		now := time.Now()
		deadline, windowed := now.Add(r.idle), false
		r.stalled = false
		if r.since > 0 {
			end := r.win.Add(r.idle)
			if !now.Before(end) {
				if r.winBytes < r.minWindow {
					r.stalled = r.winBytes > 0
					return 0, os.ErrDeadlineExceeded
				}
				r.win, r.winBytes = now, 0
				end = now.Add(r.idle)
			}
			deadline, windowed = end, true
		}
		r.conn.SetReadDeadline(deadline)
		n, err := r.conn.Read(p)
		if n > 0 {
			if r.since == 0 {
				r.first = time.Now()
				r.win, r.winBytes = r.first, 0
			}
			r.since += int64(n)
			r.winBytes += int64(n)
		}
		if n == 0 && windowed && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the window ended: judge it
		}
		return n, err
	}
}
