package primary

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// DefaultHeartbeatInterval is how often an idle native stream sends a
// heartbeat when Options.HeartbeatInterval is zero.
const DefaultHeartbeatInterval = 2 * time.Second

// nativeConn is the state of a stream that negotiated the native
// protocol; fields are fixed at the handshake, except where noted.
type nativeConn struct {
	compression string         // "" or zrsproto.CompressionZstd
	terms       zrsproto.Terms // compression and checksum of the stream
	acks        bool           // the secondary sends acknowledgements
	node        string         // zrsproto.Hello.Node: "" for a node of its own
}

// identity returns the primary's database identity, the zero Identity
// while it is empty. It is computed once, from the first transaction.
func (p *Primary) identity(ctx context.Context) (zrsproto.Identity, error) {
	if id := p.ident.Load(); id != nil {
		return *id, nil
	}
	first, err := p.FirstTxnMeta(ctx)
	if err != nil || first == nil {
		return zrsproto.Identity{}, err
	}
	id := zrsproto.IdentityOf(first)
	p.ident.Store(&id)
	return id, nil
}

// firstTxnMetaReader is implemented by storages that can read their first
// transaction's metadata without its data (a FileStorage, a Primary).
type firstTxnMetaReader interface {
	FirstTxnMeta(ctx context.Context) (*zodb.TxnInfo, error)
}

// FirstTxnMeta returns the first transaction's metadata, without reading
// its data when the wrapped storage can (nil, nil when empty). The
// database identity needs only the metadata.
func (p *Primary) FirstTxnMeta(ctx context.Context) (*zodb.TxnInfo, error) {
	if f, ok := p.st.(firstTxnMetaReader); ok {
		return f.FirstTxnMeta(ctx)
	}
	it, err := p.st.Iterate(ctx, 0, zodb.MaxTid)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	first, err := it.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	return first, err
}

// nativeHandshake reads a native secondary's hello (the protocol name and
// start tid are read) and answers with a welcome or a refusal. On success
// the stream is native.
func (s *stream) nativeHandshake(start zodb.Tid) error {
	h, err := zrsproto.ReadHello(s.conn)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ctx := s.p.ctx
	id, err := s.p.identity(ctx)
	if err != nil {
		return fmt.Errorf("handshake: reading the first transaction: %w", err)
	}
	last := s.p.st.LastTransaction()
	wel := &zrsproto.Welcome{Version: zrsproto.NativeVersion, Database: id, Last: last,
		HeartbeatMillis: s.p.opts.HeartbeatInterval.Milliseconds()}
	if reason := s.p.judge(ctx, id, last, start, h); reason != "" {
		wel.Refused = reason
		s.conn.SetWriteDeadline(time.Now().Add(s.p.opts.HandshakeTimeout))
		if err := zrsproto.WriteWelcome(s.conn, wel); err != nil {
			s.log.Debug("sending refusal", logKeyErr, err)
		}
		return fmt.Errorf("%w: %s", errRefused, reason)
	}
	if !s.p.opts.NoCompression && (s.p.opts.CompressLocal || !local(s.conn)) && slices.Contains(h.Compression, zrsproto.CompressionZstd) {
		wel.Compression = zrsproto.CompressionZstd
	}
	if slices.Contains(h.Checksums, zrsproto.ChecksumXXH64) {
		wel.Checksum = zrsproto.ChecksumXXH64
	}
	wel.Oids = h.Oids
	s.conn.SetWriteDeadline(time.Now().Add(s.p.opts.HandshakeTimeout))
	err = zrsproto.WriteWelcome(s.conn, wel)
	s.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s.mu.Lock()
	s.proto, s.start, s.lastSent, s.acked = zrsproto.Proto3, start, start, start
	s.native = &nativeConn{compression: wel.Compression, terms: wel.Terms(), acks: h.Acks, node: h.Node}
	s.mu.Unlock()
	if h.Node != "" {
		s.p.warnSharedNode(s, h.Node)
	}
	if h.Acks {
		// Its start tid counts as acknowledged (countAcked): wake the
		// sync commits that may be waiting for it.
		s.p.ackSignal.Notify()
	}
	return nil
}

// warnSharedNode warns when s's node name is also that of a live stream
// from another host. A secondary's name stays the same across its
// reconnections (so that one node counts once toward sync durability,
// countAcked) and differs between secondaries unless a machine was
// cloned along with its Data.fs (cmd/zrs derives the name from the
// machine id, the host name and the file): such twins count as one, and
// a sync quorum that needs both is never reached. A reconnection comes
// from the same host and is not warned of; unix-socket peers have no host.
// The clone's reconnections are warned of once per host and name every
// refusalLogEvery (a flapping link would otherwise repeat it each time).
func (p *Primary) warnSharedNode(s *stream, node string) {
	host := remoteHost(s.conn)
	if host == "" {
		return
	}
	var twin string
	p.mu.Lock()
	for o := range p.streams {
		if o == s || twin != "" {
			continue
		}
		o.mu.Lock()
		if o.native != nil && o.native.node == node {
			if h := remoteHost(o.conn); h != "" && h != host {
				twin = o.peer
			}
		}
		o.mu.Unlock()
	}
	p.mu.Unlock()
	if twin != "" {
		p.twins.note(s.log, slog.LevelWarn, "two secondaries on different hosts give the same node name, so they count as one toward sync durability; "+
			"was one machine cloned from the other with its files? Give the clone its own /etc/machine-id (or host name, or Data.fs path) and restart its zrs",
			"warned_since_last_logged", s.conn, "node "+node, "node", node, "other", twin)
	}
}

// errRefused: a native secondary was refused (different database,
// diverged history); the reason was sent to it.
var errRefused = errors.New("refused")

// judge decides whether a native secondary at start, announcing h, may
// be streamed from this primary (identity id, last tid last). It returns
// "" to accept, or the reason for an operator.
func (p *Primary) judge(ctx context.Context, id zrsproto.Identity, last, start zodb.Tid, h *zrsproto.Hello) string {
	restore := "; restore it from this primary or from a backup (move its Data.fs aside and let it replicate from scratch)"
	if !h.Database.IsZero() && !id.IsZero() && h.Database != id {
		return fmt.Sprintf("different database: the secondary's database is %s, this primary's is %s; "+
			"point the secondary at its own primary, or start it from an empty file to replicate this one", h.Database, id)
	}
	if start == 0 {
		return ""
	}
	if start > last {
		return fmt.Sprintf("history diverged: the secondary has transactions up to %s (%s) that this primary lacks "+
			"(its last is %s); it was probably a primary before a failover", start, start.TimeString(), last) + restore
	}
	if h.Position == nil || h.Position.Tid != start {
		return fmt.Sprintf("the hello gives no position for the start tid %s", start)
	}
	info, err := p.txnAt(ctx, start)
	if err != nil {
		return fmt.Sprintf("cannot read this primary's transaction %s: %v", start, err)
	}
	if info == nil {
		return fmt.Sprintf("history diverged at tid %s (%s): the secondary's last transaction is not in this primary's history, "+
			"so it has transactions the primary lacks", start, start.TimeString()) + restore
	}
	full, meta := zrsproto.TxnDigests(info)
	if info.Status == zodb.StatusPacked && meta == h.Position.Meta || full == h.Position.Full {
		return ""
	}
	return fmt.Sprintf("history diverged at tid %s (%s): the secondary's transaction there differs from this primary's", start, start.TimeString()) + restore
}

// txnAt returns the transaction with exactly this tid, nil if none.
func (p *Primary) txnAt(ctx context.Context, tid zodb.Tid) (*zodb.TxnInfo, error) {
	it, err := p.st.Iterate(ctx, tid, tid)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	info, err := it.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil || info.Tid != tid {
		return nil, err
	}
	return info, nil
}

// readAcks reads what a native secondary sends after the handshake:
// acknowledgements and empty keep-alives. Anything else, or a read error,
// cuts the stream.
func (s *stream) readAcks(fail context.CancelCauseFunc) {
	defer fail(nil)
	for {
		b, err := zrsproto.ReadFrame(s.conn, zrsproto.AckLimit)
		if err != nil {
			s.readFailed(err)
			fail(err)
			return
		}
		if len(b) == 0 {
			continue
		}
		tid, err := zrsproto.DecodeAck(b)
		if err == nil && tid > s.sent() {
			err = fmt.Errorf("acknowledges %s, which was not sent (last sent %s)", tid, s.sent())
		}
		if err != nil {
			s.log.Error("bad frame from native secondary; disconnecting", logKeyErr, err)
			return
		}
		s.mu.Lock()
		if tid > s.acked {
			s.acked, s.ackedAt = tid, time.Now()
		}
		s.mu.Unlock()
		s.p.ackSignal.Notify()
	}
}

// heartbeat returns what the stream tells its secondary between
// transactions, and notes the oid reservation it carries.
func (s *stream) heartbeat() zrsproto.Heartbeat {
	h := zrsproto.Heartbeat{Last: s.p.st.LastTransaction(), Time: time.Now(), Oids: s.p.OidReservation()}
	s.oidsSent.Store(uint64(h.Oids))
	return h
}

// oidsGrew reports whether the primary reserved new oids since the last
// heartbeat told a secondary that reads them.
func (s *stream) oidsGrew() bool {
	s.mu.Lock()
	oids := s.native != nil && s.native.terms.Oids
	s.mu.Unlock()
	return oids && uint64(s.p.OidReservation()) > s.oidsSent.Load()
}

var _ zodb.OidReserver = (*Primary)(nil)

// OidReservation returns the greatest oid the wrapped storage may have
// handed out or was told of (0 when it does not record them).
func (p *Primary) OidReservation() zodb.Oid {
	if r, ok := p.st.(zodb.OidReserver); ok {
		return r.OidReservation()
	}
	return 0
}

// NoteOidReservation passes a relay's upstream reservation (see
// fs.FileStorage.NoteOidReservation) to the wrapped storage, if it
// records them; the relay's own secondaries then hear of it at once.
func (p *Primary) NoteOidReservation(high zodb.Oid) error {
	r, ok := p.st.(zodb.OidReserver)
	if !ok {
		return nil
	}
	err := r.NoteOidReservation(high)
	p.announceOids()
	return err
}

// announceOids wakes the streams when the reservation grew since the last
// call, so that each tells its secondary now (a heartbeat between
// transactions) rather than at its next idle heartbeat.
func (p *Primary) announceOids() {
	if r := uint64(p.OidReservation()); r > p.oidsAnnounced.Load() {
		p.oidsAnnounced.Store(r)
		p.head.Notify()
	}
}

// sink is where a stream writes: zrs2 frames straight to the connection,
// or the native stream (optionally compressed, with heartbeats).
type sink interface {
	WriteTxn(info *zodb.TxnInfo) error
	// Heartbeat sends a heartbeat at once (native only; zrs2 has none).
	Heartbeat(h zrsproto.Heartbeat) error
	Flush() error
	// Close ends the stream cleanly (what was written is flushed).
	Close() error
}

func (s *stream) isNative() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.native != nil
}

func (s *stream) newSink(start zodb.Tid) (sink, error) {
	s.mu.Lock()
	n := s.native
	s.mu.Unlock()
	if n == nil {
		bw := bufio.NewWriterSize(s.conn, writeBufferSize)
		return &zrs2Sink{bw: bw, sw: zrsproto.NewStreamWriter(bw, start)}, nil
	}
	nw, err := zrsproto.NewNativeWriter(s.conn, start, n.terms)
	if err != nil {
		return nil, err
	}
	return nativeSink{nw}, nil
}

// zrs2Sink writes the zc.zrs stream through a write buffer.
type zrs2Sink struct {
	bw *bufio.Writer
	sw *zrsproto.StreamWriter
}

func (z *zrs2Sink) WriteTxn(info *zodb.TxnInfo) error  { return z.sw.WriteTxn(info) }
func (z *zrs2Sink) Heartbeat(zrsproto.Heartbeat) error { return nil }
func (z *zrs2Sink) Flush() error                       { return z.bw.Flush() }
func (z *zrs2Sink) Close() error                       { return z.bw.Flush() }

// nativeSink writes a native stream.
type nativeSink struct{ *zrsproto.NativeWriter }

func (n nativeSink) Heartbeat(h zrsproto.Heartbeat) error {
	if err := n.WriteHeartbeat(h); err != nil {
		return err
	}
	return n.Flush()
}

// local reports whether conn reaches a process on this host (a unix
// socket, or TCP over loopback). Compression there costs CPU at both ends
// and saves nothing: a relay or a secondary on the same host, or a test,
// gets the stream uncompressed (about 40% faster to catch up).
func local(conn net.Conn) bool {
	switch a := conn.RemoteAddr().(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}
