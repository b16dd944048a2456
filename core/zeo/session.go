package zeo

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// session is one client connection.
type session struct {
	srv   *Server
	conn  net.Conn
	peer  string
	codec Codec
	label atomic.Pointer[string]

	ctx    context.Context // canceled when the session ends
	cancel context.CancelFunc

	// Outbound queue. The reader goroutine writes it out itself after
	// each request when nothing more is buffered (no hand-off on the
	// request/reply path); messages queued from elsewhere (invalidations,
	// a vote that waited for the lock) wake the writer goroutine unless
	// the reader is busy and will drain them. One drains at a time.
	qmu        sync.Mutex
	qcond      *sync.Cond
	q          [][]byte
	qbytes     int
	qclosed    bool
	writing    bool        // a drain is in progress; guarded by qmu
	readerBusy atomic.Bool // the reader is serving requests and will drain

	closeOnce sync.Once
	ended     chan struct{} // closed when end has run

	// unpublished is the tid of a transaction this session committed
	// and has not yet published to the other clients, 0 if none.
	unpublished atomic.Uint64

	// Set by register; read by the reader goroutine and, for readOnly,
	// by vote goroutines.
	registered bool
	readOnly   bool
	// refusedWritable: a writable register was refused (the storage was
	// read-only); reader goroutine only. fellBack: the session then
	// registered read-only, as ClientStorage's read_only_fallback does on
	// the same connection; guarded by the server's pub.
	refusedWritable bool
	fellBack        bool

	stopped atomic.Pointer[string] // why stopReading was called

	// tmu guards the transaction and iterators: the reader goroutine and
	// a vote waiting for the commit lock both use them.
	tmu sync.Mutex
	txn *transaction
	// finishing counts the finished transactions of this session waiting
	// in a goroutine (tpcFinish) to be published and answered; Shutdown
	// lets the session read until none is, and end waits for them (on
	// finished, signalled when the count drops to 0).
	finishing int
	finished  *sync.Cond
	iters     map[int64]*txnIter
	recIters  map[int64]*recIter
	nextIter  int64

	// oids is record_iternext's snapshot, used by the reader goroutine
	// only (record_iternext runs under pub, so it must not take tmu).
	oids     []zodb.Oid
	recAhead recordAhead // the next record, loaded ahead; reader goroutine only
}

func newSession(s *Server, c net.Conn) *session {
	ss := &session{srv: s, conn: c, peer: c.RemoteAddr().String(), codec: s.codec}
	if ss.peer == "" || ss.peer == "@" {
		ss.peer = "unix:" + c.LocalAddr().String()
	}
	ss.ctx, ss.cancel = context.WithCancel(context.Background())
	ss.qcond = sync.NewCond(&ss.qmu)
	ss.finished = sync.NewCond(&ss.tmu)
	ss.ended = make(chan struct{})
	return ss
}

// run serves the connection until it ends.
func (ss *session) run() {
	log := ss.srv.log.With("peer", ss.peer)
	defer ss.end()
	defer ss.contain("serving a request", nil)
	if tc, ok := ss.conn.(interface{ HandshakeContext(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(ss.ctx, defaultHandshakeTTL)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			log.Warn("zeo: TLS handshake failed; connection refused", "err", err)
			return
		}
	}
	ok, err := ss.handshake()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			log.Warn("zeo: handshake failed", "err", err)
		}
		return
	}
	if !ok {
		return // a ruok probe, answered
	}
	if ss.stopped.Load() != nil {
		// stopReading came during the handshake, whose end cleared
		// the deadline: set it again.
		ss.conn.SetReadDeadline(time.Now())
	}
	log.Debug("zeo: client connected", "codec", ss.codec.Name())
	go func() {
		defer ss.contain("writing to the client", nil)
		ss.writer()
	}()
	err = ss.readLoop()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), ss.ctx.Err() != nil:
		log.Debug("zeo: client disconnected", "label", ss.labelString())
	case ss.stopped.Load() != nil && errors.Is(err, os.ErrDeadlineExceeded):
		log.Debug("zeo: client disconnected: "+*ss.stopped.Load(), "label", ss.labelString())
	case errors.Is(err, errShuttingDown):
		log.Debug("zeo: client disconnected: it began a transaction during a shutdown", "label", ss.labelString())
	default:
		log.Warn("zeo: closing connection", "label", ss.labelString(), "err", err)
	}
}

func (ss *session) labelString() string {
	if l := ss.label.Load(); l != nil {
		return *l
	}
	return ""
}

// handshake announces the protocol and reads the client's choice. It
// returns false after answering a ruok probe.
func (ss *session) handshake() (bool, error) {
	ss.conn.SetDeadline(time.Now().Add(defaultHandshakeTTL))
	defer ss.conn.SetDeadline(time.Time{})
	if err := writeFull(ss.conn, AppendFrame(nil, []byte(ss.codec.Name()+"5"))); err != nil {
		return false, err
	}
	p, err := ReadFrame(ss.conn, 64)
	if err != nil {
		return false, fmt.Errorf("reading the client's protocol: %w", err)
	}
	if string(p) == "ruok" {
		b, err := json.Marshal(map[string]any{ss.srv.opts.Name: ss.srv.statusMap()})
		if err != nil {
			return false, err
		}
		return false, writeFull(ss.conn, AppendFrame(nil, b))
	}
	if len(p) < 2 || string(p[1:]) != "5" {
		return false, fmt.Errorf("client asked for protocol %q; this server speaks %q (ZEO 5 and 6 clients)", p, ss.codec.Name()+"5")
	}
	c, ok := CodecFor(p[0])
	if !ok {
		return false, fmt.Errorf("client asked for protocol %q: unknown encoding %q", p, p[0])
	}
	ss.codec = c
	return true, nil
}

// readLoop reads and serves requests until the connection ends.
func (ss *session) readLoop() error {
	br := bufio.NewReaderSize(ss.conn, 16<<10) // large frames bypass it
	for {
		// Replies to pipelined requests go out together; a reader
		// that may block wakes the writer for anything queued meanwhile.
		ss.readerBusy.Store(false)
		if br.Buffered() == 0 {
			ss.drain()
		}
		writer := ss.registered && !ss.readOnly
		limit := ss.srv.opts.MaxFrame
		if !writer {
			limit = min(limit, FrameOverhead)
		}
		p, err := ReadFrame(br, limit)
		if errors.Is(err, ErrFrameTooLarge) && !writer {
			return fmt.Errorf("%w: a message over %d bytes before a writable register "+
				"(a read-only or unregistered client has nothing that long to send)", err, limit)
		}
		if errors.Is(err, ErrFrameTooLarge) {
			return fmt.Errorf("%w: a message larger than the largest transaction this server accepts "+
				"(%d bytes; raise it with --zeo-max-txn-mb)", err, ss.srv.opts.MaxTxnBytes)
		}
		if err != nil {
			return err
		}
		ss.readerBusy.Store(true)
		if done, err := ss.serveLoadBefore(p); done {
			if err != nil {
				return err
			}
			continue
		}
		m, err := ss.codec.Decode(p)
		if err != nil {
			return fmt.Errorf("undecodable message (%d bytes): %w", len(p), err)
		}
		if err := ss.handle(m); err != nil {
			return err
		}
	}
}

// handle serves one message. An error closes the connection.
func (ss *session) handle(m *Message) error {
	if m.Name == ".reply" {
		if n, ok := m.ID.AsInt(); ok && n == -1 {
			return nil // heartbeat
		}
		return fmt.Errorf("unexpected reply from the client (msgid %s)", m.ID)
	}
	oneway := m.Flags == FlagOneWay
	meth, ok := methods[m.Name]
	if !ok {
		return fmt.Errorf("unknown method %q", m.Name)
	}
	if !ss.registered && m.Name != "register" {
		if oneway {
			return fmt.Errorf("%s before register", m.Name)
		}
		return ss.replyErr(m.ID, errNotRegistered)
	}
	a := newArgs(m.Name, m.Args)
	if meth.load {
		// Computed and queued under the publication lock's read side
		// (see the package doc); deferred, so that a panic releases it.
		ss.srv.pub.RLock()
		defer ss.srv.pub.RUnlock()
	}
	v, err := meth.fn(ss, a, m.ID)
	if meth.load && ss.srv.opts.afterLoad != nil {
		ss.srv.opts.afterLoad(false)
	}
	if err == nil && a.err != nil {
		err = a.err
	}
	if oneway {
		if err != nil {
			return fmt.Errorf("one-way %s failed: %w", m.Name, err)
		}
		return nil
	}
	return ss.answer(m.ID, v, err)
}

// answer queues the reply or error reply for a call.
func (ss *session) answer(id, v *pyval.Value, err error) error {
	switch {
	case errors.Is(err, errReplied):
		return nil
	case err != nil:
		return ss.replyErr(id, err)
	}
	if v == nil {
		v = pyval.None()
	}
	return ss.send(replyMsg(id, v))
}

func (ss *session) replyErr(id *pyval.Value, err error) error {
	q, payload := errorPayload(err)
	if q == excStorageError {
		ss.srv.log.Warn("zeo: request failed", "peer", ss.peer, "err", err)
	}
	return ss.send(errorMsg(id, q, payload))
}

func (ss *session) encode(m *Message) ([]byte, error) {
	p, err := ss.codec.Encode(m)
	if err != nil {
		return nil, err
	}
	return AppendFrame(nil, p), nil
}

// send encodes and queues a message.
func (ss *session) send(m *Message) error {
	f, err := ss.encode(m)
	if err != nil {
		// Not the client's fault, and the reply must not be lost: say why.
		q, payload := errorPayload(fmt.Errorf("the server cannot encode its reply to %s: %v", m.Name, err))
		f, err = ss.encode(errorMsg(m.ID, q, payload))
		if err != nil {
			return err
		}
	}
	ss.queue(f)
	return nil
}

// queue appends a frame to the outbound queue; a client that lets the
// queue grow past MaxQueue is disconnected.
func (ss *session) queue(f []byte) {
	ss.qmu.Lock()
	if ss.qclosed {
		ss.qmu.Unlock()
		return
	}
	if ss.qbytes+len(f) > ss.srv.opts.MaxQueue && ss.qbytes > 0 {
		ss.qmu.Unlock()
		ss.srv.log.Warn("zeo: client does not read its messages; disconnecting it",
			"peer", ss.peer, "queued_bytes", ss.qbytes)
		ss.close(nil)
		return
	}
	ss.q = append(ss.q, f)
	ss.qbytes += len(f)
	ss.qmu.Unlock()
	if !ss.readerBusy.Load() {
		ss.qcond.Signal()
	}
}

// take claims the queued frames for writing, or returns nil when there
// are none or another drain is in progress. The caller holds qmu.
func (ss *session) take() net.Buffers {
	if len(ss.q) == 0 || ss.writing || ss.qclosed {
		return nil
	}
	bufs := net.Buffers(ss.q)
	ss.q = nil
	ss.qbytes = 0
	ss.writing = true
	return bufs
}

// write writes claimed frames and ends the drain.
func (ss *session) write(bufs net.Buffers) {
	_, err := bufs.WriteTo(ss.conn)
	ss.qmu.Lock()
	ss.writing = false
	more := len(ss.q) > 0
	ss.qmu.Unlock()
	if err != nil {
		ss.close(err)
		return
	}
	if more {
		ss.qcond.Signal()
	}
}

// drain writes what is queued, in the calling goroutine.
func (ss *session) drain() {
	ss.qmu.Lock()
	bufs := ss.take()
	ss.qmu.Unlock()
	if bufs != nil {
		ss.write(bufs)
	}
}

// writer drains the queue when woken, until the session ends.
func (ss *session) writer() {
	for {
		ss.qmu.Lock()
		var bufs net.Buffers
		for !ss.qclosed {
			if bufs = ss.take(); bufs != nil {
				break
			}
			ss.qcond.Wait()
		}
		ss.qmu.Unlock()
		if bufs == nil {
			return
		}
		ss.write(bufs)
	}
}

// stopReading makes the reader stop at its next read of the connection,
// so the session ends once what it is serving is answered; why is logged.
func (ss *session) stopReading(why string) {
	ss.stopped.Store(&why)
	ss.conn.SetReadDeadline(time.Now())
}

// errShuttingDown refuses a tpc_begin once Shutdown has begun.
var errShuttingDown = errors.New("the server is shutting down; reconnect to commit")

// close ends the session: the connection is closed and the reader and
// writer stop. Idempotent.
//
// It never blocks: callers hold the publication lock (a client past
// MaxQueue) or the commit-timer lock. A TLS connection is closed under
// its TLS layer, since tls.Conn.Close first writes a close_notify alert,
// which waits up to 5 s on a client that does not read; end says goodbye
// properly before it gets here.
func (ss *session) close(error) {
	ss.closeOnce.Do(func() {
		ss.cancel()
		if tc, ok := ss.conn.(interface{ NetConn() net.Conn }); ok {
			tc.NetConn().Close()
		} else {
			ss.conn.Close()
		}
		ss.qmu.Lock()
		ss.qclosed = true
		ss.q = nil
		ss.qmu.Unlock()
		ss.qcond.Broadcast()
	})
}

// end runs when the reader stops: the session is unregistered, its
// transaction aborted, and what is queued for the client written before
// the connection closes.
func (ss *session) end() {
	ss.readerBusy.Store(false)
	// The transaction first, so that the commit lock it may hold is free
	// at once, whatever the goodbye below costs with a client that does
	// not read. Cancelling the session stops a vote's replay or wait.
	ss.cancel()
	ss.srv.pub.Lock()
	delete(ss.srv.sessions, ss)
	ss.srv.pub.Unlock()
	ss.tmu.Lock()
	t := ss.txn
	ss.closeIters()
	ss.tmu.Unlock()
	if t != nil {
		t.abort()
	}
	// A commit still finishing (waiting for the secondaries: until they
	// answer, their timeout, or the server's Close) is answered before the
	// connection closes, whatever ended the reader — unless the connection
	// is closed already (an internal error, Close), and the answer could
	// not go out.
	ss.qmu.Lock()
	open := !ss.qclosed
	ss.qmu.Unlock()
	ss.tmu.Lock()
	for open && ss.finishing > 0 {
		ss.finished.Wait()
	}
	ss.tmu.Unlock()
	// Send what is queued (error replies explaining why we close)
	// before the socket goes, for a second at most (the writer's write in
	// flight ends at the same deadline).
	ss.conn.SetWriteDeadline(time.Now().Add(time.Second))
	ss.drain()
	ss.flush(time.Second)
	if tc, ok := ss.conn.(*tls.Conn); ok {
		tc.CloseWrite() // close_notify; the TLS layer bounds it (5 s)
	}
	ss.close(nil)
	close(ss.ended)
}

// flush waits up to d for the outbound queue to drain.
func (ss *session) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ss.qmu.Lock()
		empty := (len(ss.q) == 0 && !ss.writing) || ss.qclosed
		ss.qmu.Unlock()
		if empty {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
