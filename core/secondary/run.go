package secondary

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// readBufferSize is the buffer between the connection and the stream
// reader.
const readBufferSize = 64 << 10

// Run replicates until ctx ends or Close is called, then returns nil, or
// until Promote stops it, then returns ErrPromoted. It
// connects to the primary, sends its protocol and the last local tid, and
// applies each transaction received; on any failure (connection refused
// or lost, a bad frame or checksum, a storage error) it aborts the
// transaction being applied, disconnects, waits (capped exponential
// back-off with jitter), and reconnects from its last committed tid. It
// gives up only when the storage has closed itself (a failed write or
// fsync: an error wrapping zodb.ErrClosed), since only reopening the file
// recovers from that. Only one Run may be active at a time.
func (s *Secondary) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("secondary: run: %w", zodb.ErrClosed)
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("secondary: run: already running")
	}
	if s.obs.promoting.Load() {
		s.mu.Unlock()
		return fmt.Errorf("secondary: run: %w", ErrPromoted)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.running, s.cancelRun, s.runDone = true, cancel, done
	s.mu.Unlock()
	defer func() {
		cancel()
		s.mu.Lock()
		s.running, s.cancelRun = false, nil
		s.mu.Unlock()
		close(done)
	}()

	b := backoff{min: s.opts.MinBackoff, max: s.opts.MaxBackoff}
	var fl failureLog
	// probing: the zrs2.0 fall-back period ended and zrs3 is being tried
	// again. A zc.zrs primary closes those handshakes, as expected: they
	// are not failures to warn about (the fall-back is logged once).
	probing := false
	for {
		var once sync.Once
		stable := false
		markStable := func() {
			once.Do(func() {
				stable = true
				fl.stable(s)
				b.reset()
			})
		}
		err := s.cycle(ctx, markStable)
		if ctx.Err() != nil {
			return s.stopped()
		}
		once.Do(func() {}) // a late timer must not mark this cycle stable
		if errors.Is(err, errRetryNative) {
			s.log.Info("the zrs2.0 fall-back period is over: reconnecting to try zrs3", logKeyTid, s.st.LastTransaction())
			probing = true
			continue
		}
		if probing && errors.Is(err, errNotNative) {
			s.log.Debug("the primary still closes zrs3 handshakes", logKeyErr, err)
			select {
			case <-time.After(b.next()):
			case <-ctx.Done():
				return s.stopped()
			}
			continue
		}
		probing = false
		s.setErr(err)
		if errors.Is(err, zodb.ErrClosed) {
			// Not Close (it stops Run first): the storage closed itself
			// after a failed write or fsync, which leaves the file's state
			// to the next open. Reconnecting cannot help; stopping lets
			// the service manager restart the node, which recovers it.
			s.log.Error("replication stopped: the storage closed after an error; restart to recover the file", logKeyErr, err)
			return fmt.Errorf("secondary: the storage closed after an error (a restart recovers the file): %w", err)
		}
		delay := b.next()
		fl.failed(s, err, stable, delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return s.stopped()
		}
	}
}

// stopped logs the end of Run and returns its result: ErrPromoted when
// Promote stopped it (so a caller waiting on Run knows, even before
// Promote has finished), nil when its context ended.
func (s *Secondary) stopped() error {
	s.log.Info("replication stopped", logKeyTid, s.st.LastTransaction())
	if s.obs.promoting.Load() {
		return ErrPromoted
	}
	return nil
}

func (s *Secondary) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

func (s *Secondary) setConnected(c bool) {
	s.mu.Lock()
	s.connected = c
	s.since = time.Now()
	s.mu.Unlock()
}

// cycle is one connection: dial, handshake, apply transactions until
// something fails. It always returns a non-nil error (nil only when ctx
// ended). markStable is called once the connection has proven useful (a
// transaction applied, or alive for stableAfter).
func (s *Secondary) cycle(ctx context.Context, markStable func()) (err error) {
	conn, err := s.dialer.Dial(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if s.useNative() {
		return s.nativeCycle(ctx, conn, markStable)
	}
	s.nat.setProto(zrsproto.Proto20)
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
	if err := s.guard("sending the handshake to the primary", func() error {
		return zrsproto.WriteHandshake(conn, zrsproto.Proto20, start)
	}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s.log.Debug("connected; handshake sent", logKeyTid, start)
	s.firstConnect.Do(func() { s.log.Info("connected to primary", logKeyTid, start) })
	s.setConnected(true)
	defer s.setConnected(false)
	timer := time.AfterFunc(stableAfter, markStable)
	defer timer.Stop()
	if s.opts.KeepAlive > 0 {
		wg.Go(func() { s.keepAlive(ctx, cancel, conn) })
	}
	if until := s.nat.fallbackEnd(); s.opts.Protocol == ProtoAuto && !until.IsZero() {
		retry := time.AfterFunc(time.Until(until), func() { cancel(errRetryNative) })
		defer retry.Stop()
	}

	ir := newIdleReader(conn, s.opts.ReadTimeout)
	br := bufio.NewReaderSize(ir, readBufferSize)
	sr := zrsproto.NewStreamReader(br, start)
	defer s.obs.setIdle(false)
	a := s.newApplier(ctx, cancel, nil)
	defer func() { err = a.wait(err) }() // before the connection is torn down
	for applied := 0; ; applied++ {
		a.setReceivedAll(br.Buffered() == 0)
		var info *zodb.TxnInfo
		err := s.guard("reading a transaction from the primary", func() (err error) {
			info, err = sr.ReadTxn()
			return err
		})
		a.setReceivedAll(false)
		if err != nil {
			if applied == 0 && errors.Is(err, io.EOF) && ctx.Err() == nil {
				if s.opts.Protocol == ProtoAuto {
					// A zrs primary refusing this secondary (diverged
					// history) can only close a zrs2 connection; over zrs3
					// it says why. A zc.zrs primary closes that one, and
					// the fall-back resumes.
					s.nat.retryNative()
				}
				return errors.New("the primary closed the connection before sending anything " +
					"(a primary refuses a secondary whose last transaction is newer than its own, " +
					"and a zrs primary one whose last transaction is not in its history; see the primary's log)")
			}
			return s.readError(ctx, err, ir, "nothing (ReadTimeout)")
		}
		ir.progressed()
		if err := a.apply(info); err != nil {
			return err
		}
		ir.progressed() // applying is not the stream's idleness
		markStable()
	}
}

// keepAlive sends an empty frame every KeepAlive until ctx ends. A failed
// write means the path is dead: it cancels the cycle, with the write's
// error as the cause the cycle returns.
func (s *Secondary) keepAlive(ctx context.Context, cancel context.CancelCauseFunc, conn net.Conn) {
	defer s.containWriter("sending keep-alives to the primary", cancel)
	t := time.NewTicker(s.opts.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := zrsproto.WriteFrame(conn, nil); err != nil {
			cancel(fmt.Errorf("sending a keep-alive to the primary: %w", err))
			return
		}
	}
}

// backoff is a capped exponential back-off with jitter: each delay is
// drawn from [d/2, d], and d doubles from min up to max.
type backoff struct {
	min, max time.Duration
	d        time.Duration
}

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = b.min
	} else {
		b.d = min(2*b.d, b.max)
	}
	half := b.d / 2
	return half + rand.N(b.d-half+1)
}

// failureLog rate-limits the logs of the reconnect loop: a loss after a
// good connection is logged at once; repeated failures once per logEvery;
// the first good connection after failures once, as "recovered".
type failureLog struct {
	attempts int       // failed attempts since the last stable connection
	lastLog  time.Time // when a failure was last logged
	lost     bool      // a stable connection was lost and none is stable since
}

func (f *failureLog) failed(s *Secondary, err error, wasStable bool, delay time.Duration) {
	if wasStable {
		s.log.Warn("lost connection to primary; reconnecting", logKeyErr, err, logKeyDelay, delay)
		f.attempts, f.lastLog, f.lost = 0, time.Now(), true
		return
	}
	f.attempts++
	if f.attempts == 1 || time.Since(f.lastLog) >= logEvery {
		s.log.Warn("cannot replicate from primary; retrying", logKeyErr, err, logKeyTries, f.attempts, logKeyDelay, delay)
		f.lastLog = time.Now()
		return
	}
	s.log.Debug("retrying", logKeyErr, err, logKeyTries, f.attempts, logKeyDelay, delay)
}

func (f *failureLog) stable(s *Secondary) {
	if f.attempts > 0 || f.lost {
		s.log.Info("recovered: replicating from primary again", logKeyTries, f.attempts+1, logKeyTid, s.st.LastTransaction())
	}
	f.attempts, f.lost = 0, false
}
