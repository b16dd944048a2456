package zeo

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
)

// A client that holds the commit lock, pipelines requests ending with a
// bad one and stops reading must not keep the lock: the session ends on
// the bad message, and its goodbye writes to a client that does not read
// are bounded, so the transaction is aborted and another client's vote
// gets the lock (Python's server drops the connection and aborts too).
func TestUnreadRepliesDoNotKeepTheCommitLock(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	w := dialRegistered(t, addr)
	big := w.newOid()
	tid := w.commit(1, store{big, 0, bytes.Repeat([]byte("x"), 1<<20)})

	a, pc := dialPausable(t, addr)
	a.register(false)
	a.begin(7)
	a.oneWay("storea", oidValue(a.newOid()), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(7))
	if v := a.call("vote", pyval.Int(7)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	pc.paused.Store(true) // a holds the commit lock and stops reading
	var burst []byte
	for i := range 48 { // 48 MiB of replies: more than the socket buffers hold
		p, _ := encodePickle(&Message{ID: pyval.Int(int64(1000 + i)), Flags: FlagReply, Name: "loadSerial",
			Args: pyval.Tuple(oidValue(big), tidValue(tid))})
		burst = AppendFrame(burst, p)
	}
	p, _ := encodePickle(&Message{ID: pyval.Int(2000), Flags: FlagReply, Name: "no_such_method", Args: pyval.Tuple()})
	burst = AppendFrame(burst, p)
	if _, err := pc.Conn.Write(burst); err != nil {
		t.Fatal(err)
	}

	b := dialRegistered(t, addr)
	b.begin(9)
	b.oneWay("storea", oidValue(b.newOid()), tidValue(0), pyval.Bytes([]byte("b")), pyval.Int(9))
	ch := b.start("vote", pyval.Int(9))
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("another client's vote still waits for the commit lock %v after the client holding it sent a bad message and stopped reading", testTimeout)
	}
}

// pausableConn stops reading (every Read blocks) once paused.
type pausableConn struct {
	net.Conn
	paused atomic.Bool
	stop   chan struct{}
}

func (c *pausableConn) Read(p []byte) (int, error) {
	if c.paused.Load() {
		<-c.stop
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

// dialPausable is dialTest over a connection whose reads can be paused.
func dialPausable(t *testing.T, addr net.Addr) (*testClient, *pausableConn) {
	raw, err := net.DialTimeout(addr.Network(), addr.String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	pc := &pausableConn{Conn: raw, stop: make(chan struct{})}
	t.Cleanup(func() { close(pc.stop); raw.Close() })
	p, err := ReadFrame(pc, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Write(AppendFrame(nil, p)); err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, conn: pc, codec: PickleCodec, pending: make(map[string]chan *Message),
		oneways: make(chan *Message, 10000), closed: make(chan struct{})}
	go c.read()
	return c, pc
}

// MaxQueue counts what waits behind the batch being written: a client
// reading a reply larger than MaxQueue (a big object) is not dropped for
// the invalidations queued meanwhile, and one that lets MaxQueue pile up
// behind it is.
func TestMaxQueueCountsWhatWaitsBehindTheWrite(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{MaxQueue: 1000})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ss := newSession(srv, a)
	closed := func() bool {
		ss.qmu.Lock()
		defer ss.qmu.Unlock()
		return ss.qclosed
	}
	ss.readerBusy.Store(true)    // nothing wakes the writer: the test drains
	ss.queue(make([]byte, 1500)) // a big object's reply
	ss.qmu.Lock()
	bufs := ss.take() // being written; the client reads it
	ss.qmu.Unlock()
	if len(bufs) != 1 || closed() {
		t.Fatalf("claimed %d frames, closed %v: a reply larger than MaxQueue with nothing queued was refused", len(bufs), closed())
	}
	for range 9 {
		ss.queue(make([]byte, 100)) // invalidations meanwhile: 900 bytes
	}
	if closed() {
		t.Fatal("a client reading a large reply was dropped for 900 bytes queued behind it (MaxQueue 1000)")
	}
	ss.queue(make([]byte, 200))
	if !closed() {
		t.Fatal("1100 bytes queued behind the write (MaxQueue 1000): still connected")
	}
}
