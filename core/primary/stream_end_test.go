package primary

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// Shutdown lets every stream send what is committed, then end. A native
// secondary acknowledges what it applies while it reads the tail of the
// stream: an ack arriving on a socket the primary has closed makes the
// kernel reset the connection and drop what was still in flight, so the
// primary half-closes and reads acks until the secondary closes.
func TestShutdownDeliversToAckingSecondary(t *testing.T) {
	st := openTestFS(t)
	const n = 60
	var last zodb.Tid
	for range n {
		last = commit(t, st, 256<<10)
	}
	p := New(st, Options{})
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background())

	c, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := zrsproto.WriteNativeHandshake(c, 0, &zrsproto.Hello{Version: 1, Acks: true}); err != nil {
		t.Fatal(err)
	}
	wel, err := zrsproto.ReadWelcome(c)
	if err != nil || wel.Refused != "" {
		t.Fatalf("welcome: %v %v", wel, err)
	}
	nr, err := zrsproto.NewNativeReader(c, 0, wel.Terms())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(converge))

	shut := make(chan error, 1)
	var got zodb.Tid
	for i := 0; ; i++ {
		info, _, err := nr.Next()
		if err != nil {
			if got != last {
				t.Fatalf("stream ended after %s, want everything up to %s (%d txns committed before Shutdown): %v", got, last, n, err)
			}
			c.Close() // a secondary drops the connection when it ends
			break
		}
		if info == nil {
			continue
		}
		got = info.Tid
		if i == 0 {
			// The secondary is now catching up; the operator stops the primary.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), converge)
				defer cancel()
				shut <- p.Shutdown(ctx)
			}()
		}
		time.Sleep(5 * time.Millisecond) // applying and fsyncing
		if err := zrsproto.WriteFrame(c, zrsproto.EncodeAck(info.Tid)); err != nil {
			t.Logf("ack %s: %v", info.Tid, err)
		}
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// nativeDial opens a native stream from start (position from the
// primary's own copy of start) and returns the connection and its reader.
func nativeDial(t *testing.T, p *Primary, addr string, start zodb.Tid, db zrsproto.Identity) (net.Conn, *zrsproto.NativeReader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &zrsproto.Hello{Version: 1, Acks: true, Database: db}
	if start != 0 {
		info, err := p.txnAt(context.Background(), start)
		if err != nil || info == nil {
			t.Fatalf("txnAt %s: %v %v", start, info, err)
		}
		h.Position = zrsproto.PositionOf(info)
	}
	if err := zrsproto.WriteNativeHandshake(c, start, h); err != nil {
		t.Fatal(err)
	}
	wel, err := zrsproto.ReadWelcome(c)
	if err != nil || wel.Refused != "" {
		t.Fatalf("welcome: %v %v", wel, err)
	}
	nr, err := zrsproto.NewNativeReader(c, start, wel.Terms())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(converge))
	return c, nr
}

func nextTxn(t *testing.T, nr *zrsproto.NativeReader) *zodb.TxnInfo {
	t.Helper()
	for {
		info, _, err := nr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if info != nil {
			return info
		}
	}
}

// A sync commit waits for a secondary that applied it but lost its
// connection before its ack got through. The secondary reconnects at
// once, saying (verified by digest) that it has the commit: a handshake's
// start tid counts as acknowledged, and the waiting commit is woken to
// count it rather than failing after the whole timeout.
func TestSyncCountsReconnectedSecondary(t *testing.T) {
	st := openTestFS(t)
	first := commit(t, st, 10)
	// A timeout no wake-up takes, however loaded the machine: the commit
	// must return long before it.
	const timeout = 20 * time.Second
	s := serveStorage(t, st, Options{Durability: Durability{Mode: Sync, Quorum: 1, Timeout: timeout}})
	db, err := s.identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, nr := nativeDial(t, s.Primary, s.addr, 0, db)
	if got := nextTxn(t, nr); got.Tid != first {
		t.Fatalf("got %s, want %s", got.Tid, first)
	}
	zrsproto.WriteFrame(c, zrsproto.EncodeAck(first))

	type result struct {
		tid  zodb.Tid
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		ctx := context.Background()
		begun := time.Now()
		txn, err := s.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			done <- result{err: err}
			return
		}
		oid, _ := s.NewOid(ctx)
		txn.Store(oid, 0, []byte("x"))
		if err := txn.Vote(ctx); err != nil {
			done <- result{err: err}
			return
		}
		tid, err := txn.Finish(ctx)
		done <- result{tid, err, time.Since(begun)}
	}()
	// The secondary receives the commit, applies and fsyncs it, and the
	// connection breaks before its ack is sent.
	t1 := nextTxn(t, nr).Tid
	c.Close()
	waitFor := time.Now().Add(converge)
	for len(s.Status().Secondaries) != 0 && time.Now().Before(waitFor) {
		time.Sleep(time.Millisecond)
	}
	// It reconnects at once, at t1.
	nativeDial(t, s.Primary, s.addr, t1, db)
	for len(s.Status().Secondaries) != 1 && time.Now().Before(waitFor) {
		time.Sleep(time.Millisecond)
	}
	if n := s.countAcked(t1); n != 1 {
		t.Fatalf("countAcked(%s) = %d after the reconnection", t1, n)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("commit %s failed after %v although a connected secondary has it: %v", r.tid, r.took.Round(time.Millisecond), r.err)
	}
	if r.took >= timeout/2 {
		t.Fatalf("commit %s returned after %v: not woken by the reconnection, counted when its timeout (%v) ran out", r.tid, r.took.Round(time.Millisecond), timeout)
	}
}

// A connection that has not sent its handshake when Shutdown begins is
// closed, not waited for up to its handshake timeout.
func TestShutdownDoesNotWaitForSilentHandshake(t *testing.T) {
	p := New(openTestFS(t), Options{HandshakeTimeout: time.Hour})
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background())
	c, err := net.Dial("tcp", a.String()) // connected, silent (a port check, a half-open peer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // accepted
	// Waiting for the handshake (an hour) would last until the context
	// ends, which then cuts the connection: Shutdown must be done long
	// before.
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	t0 := time.Now()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took >= converge/2 {
		t.Fatalf("Shutdown took %v: it waited for a connection that never sent a handshake", took.Round(time.Millisecond))
	}
}

// slowIterStorage's iterators take delay over every transaction, as a
// large transaction on a slow disk does.
type slowIterStorage struct {
	Storage
	delay time.Duration
}

func (s *slowIterStorage) Iterate(ctx context.Context, start, stop zodb.Tid) (zodb.TxnIterator, error) {
	it, err := s.Storage.Iterate(ctx, start, stop)
	if err != nil {
		return nil, err
	}
	return slowIter{it, s.delay}, nil
}

type slowIter struct {
	zodb.TxnIterator
	delay time.Duration
}

func (it slowIter) Next(ctx context.Context) (*zodb.TxnInfo, error) {
	time.Sleep(it.delay)
	return it.TxnIterator.Next(ctx)
}

// While one transaction takes long to read, a zrs3 secondary still gets a
// heartbeat every interval (between transactions), so that it does not
// take the primary for dead and reconnect, to have the same transaction
// read again, forever.
func TestHeartbeatsWhileATransactionIsRead(t *testing.T) {
	st := &slowIterStorage{Storage: openTestFS(t), delay: 600 * time.Millisecond}
	first := commit(t, st, 10)
	s := serveStorage(t, st, Options{HeartbeatInterval: 50 * time.Millisecond})
	db, err := s.identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, nr := nativeDial(t, s.Primary, s.addr, 0, db)
	beats := 0
	for {
		info, hb, err := nr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if hb != nil {
			beats++
			continue
		}
		if info.Tid != first {
			t.Fatalf("got %s, want %s", info.Tid, first)
		}
		break
	}
	if beats < 3 {
		t.Fatalf("%d heartbeats while the first transaction took 600 ms to read at 50 ms intervals", beats)
	}
}
