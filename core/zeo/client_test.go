package zeo

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// A minimal ZEO client for the server's tests: calls are matched to
// replies by msgid; one-way messages from the server are kept in arrival
// order, interleaved with replies in events.

type testClient struct {
	t     testing.TB
	conn  net.Conn
	codec Codec

	mu      sync.Mutex
	next    int64
	pending map[string]chan *Message
	events  []*Message // every message received, in order
	oneways chan *Message
	closed  chan struct{}

	skipInvalidations bool // finish ignores invalidations from other clients
}

const testTimeout = 10 * time.Second

func dialTest(t testing.TB, addr net.Addr, tcfg *tls.Config) *testClient {
	t.Helper()
	c, err := dialTestErr(addr, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(func() { c.conn.Close() })
	return c
}

func dialTestErr(addr net.Addr, tcfg *tls.Config) (*testClient, error) {
	conn, err := net.DialTimeout(addr.Network(), addr.String(), testTimeout)
	if err != nil {
		return nil, err
	}
	if tcfg != nil {
		tc := tls.Client(conn, tcfg)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	conn.SetDeadline(time.Now().Add(testTimeout))
	p, err := ReadFrame(conn, 64)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading the server's protocol: %w", err)
	}
	codec, ok := CodecFor(p[0])
	if !ok || string(p[1:]) != "5" {
		conn.Close()
		return nil, fmt.Errorf("server announced %q", p)
	}
	if _, err := conn.Write(AppendFrame(nil, p)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	c := &testClient{conn: conn, codec: codec, pending: make(map[string]chan *Message),
		oneways: make(chan *Message, 10000), closed: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *testClient) read() {
	defer close(c.closed)
	for {
		p, err := ReadFrame(c.conn, 1<<30)
		if err != nil {
			return
		}
		m, err := c.codec.Decode(p)
		if err != nil {
			c.t.Errorf("client cannot decode a server message: %v", err)
			return
		}
		c.mu.Lock()
		c.events = append(c.events, m)
		var ch chan *Message
		if m.Flags != FlagOneWay {
			ch = c.pending[m.ID.String()]
			delete(c.pending, m.ID.String())
		}
		c.mu.Unlock()
		if m.Flags == FlagOneWay {
			c.oneways <- m
		} else if ch != nil {
			ch <- m
		} else {
			c.t.Errorf("reply to an unknown msgid %s", m.ID)
		}
	}
}

func (c *testClient) send(m *Message) {
	c.t.Helper()
	p, err := c.codec.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(AppendFrame(nil, p)); err != nil {
		c.t.Fatalf("sending %s: %v", m.Name, err)
	}
}

// start sends a call and returns the channel its reply will arrive on.
func (c *testClient) start(name string, args ...*pyval.Value) <-chan *Message {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	id := pyval.Int(c.next)
	if name == "loadBefore" {
		id = pyval.Tuple(args...)
	}
	ch := make(chan *Message, 1)
	c.pending[id.String()] = ch
	c.mu.Unlock()
	c.send(&Message{ID: id, Flags: FlagReply, Name: name, Args: pyval.Tuple(args...)})
	return ch
}

func (c *testClient) wait(ch <-chan *Message, what string) *Message {
	c.t.Helper()
	select {
	case m := <-ch:
		return m
	case <-c.closed:
		// The reader hands a reply on before it sees the end: a reply
		// followed by the server closing is a reply.
		select {
		case m := <-ch:
			return m
		default:
		}
		c.t.Fatalf("%s: connection closed", what)
	case <-time.After(testTimeout):
		c.t.Fatalf("%s: no reply", what)
	}
	return nil
}

// call returns the reply value, failing the test on an error reply.
func (c *testClient) call(name string, args ...*pyval.Value) *pyval.Value {
	c.t.Helper()
	m := c.wait(c.start(name, args...), name)
	if m.Flags == FlagError {
		c.t.Fatalf("%s: error reply %s", name, m.Args)
	}
	return m.Args
}

// callErr returns the qualname and payload of an error reply, failing
// the test on a normal reply.
func (c *testClient) callErr(name string, args ...*pyval.Value) (string, *pyval.Value) {
	c.t.Helper()
	m := c.wait(c.start(name, args...), name)
	if m.Flags != FlagError {
		c.t.Fatalf("%s: want an error reply, got %s", name, m.Args)
	}
	it := m.Args.Items()
	q, _ := it[0].AsText()
	return q, it[1]
}

func (c *testClient) oneWay(name string, args ...*pyval.Value) {
	c.t.Helper()
	c.send(&Message{ID: pyval.Int(0), Flags: FlagOneWay, Name: name, Args: pyval.Tuple(args...)})
}

// expect returns the next one-way message from the server, which must be
// called name.
func (c *testClient) expect(name string) *Message {
	c.t.Helper()
	select {
	case m := <-c.oneways:
		if m.Name != name {
			c.t.Fatalf("want one-way %s, got %s%s", name, m.Name, m.Args)
		}
		return m
	case <-time.After(testTimeout):
		c.t.Fatalf("no %s message", name)
	}
	return nil
}

// expectSkipping is expect that lets through invalidations when skip is
// set (clients committing concurrently with others).
func (c *testClient) expectSkipping(name string, skip bool) *Message {
	c.t.Helper()
	for {
		select {
		case m := <-c.oneways:
			if skip && m.Name == "invalidateTransaction" && name != m.Name {
				continue
			}
			if m.Name != name {
				c.t.Fatalf("want one-way %s, got %s%s", name, m.Name, m.Args)
			}
			return m
		case <-time.After(testTimeout):
			c.t.Fatalf("no %s message", name)
		}
	}
}

// noOneWay checks that no one-way message arrives within d.
func (c *testClient) noOneWay(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.oneways:
		c.t.Fatalf("unexpected %s%s", m.Name, m.Args)
	case <-time.After(d):
	}
}

// dialRegistered is dialTest and a writable register.
func dialRegistered(t testing.TB, addr net.Addr) *testClient {
	t.Helper()
	c := dialTest(t, addr, nil)
	c.register(false)
	return c
}

func (c *testClient) register(readOnly bool) zodb.Tid {
	c.t.Helper()
	return mustTid(c.t, c.call("register", pyval.Str("1"), pyval.Bool(readOnly)))
}

// commit stores (oid, serial, data) triples in one transaction and
// returns the vote result and the committed tid.
func (c *testClient) commit(txn int64, stores ...store) zodb.Tid {
	c.t.Helper()
	c.voted(txn, stores...)
	return c.finish(txn)
}

// voted begins transaction txn, stores and votes it, which must succeed.
func (c *testClient) voted(txn int64, stores ...store) {
	c.t.Helper()
	c.begin(txn)
	for _, s := range stores {
		c.oneWay("storea", oidValue(s.oid), tidValue(s.serial), pyval.Bytes(s.data), pyval.Int(txn))
	}
	if v := c.call("vote", pyval.Int(txn)); v.Len() != 0 {
		c.t.Fatalf("vote: %s", v)
	}
}

func (c *testClient) begin(txn int64) {
	c.t.Helper()
	c.oneWay("tpc_begin", pyval.Int(txn), pyval.Bytes([]byte("user")), pyval.Bytes([]byte("desc")), pyval.Dict(), pyval.None(), pyval.Str(" "))
}

func (c *testClient) finish(txn int64) zodb.Tid {
	c.t.Helper()
	ch := c.start("tpc_finish", pyval.Int(txn))
	info := c.expectSkipping("info", c.skipInvalidations)
	if _, ok := info.Args.Items()[0].Lookup("length"); !ok {
		c.t.Errorf("info without length: %s", info.Args)
	}
	m := c.wait(ch, "tpc_finish")
	if m.Flags == FlagError {
		c.t.Fatalf("tpc_finish: %s", m.Args)
	}
	return mustTid(c.t, m.Args)
}

func (c *testClient) newOid() zodb.Oid {
	c.t.Helper()
	v := c.call("new_oids", pyval.Int(1))
	return mustOid(c.t, v.Items()[0])
}

type store struct {
	oid    zodb.Oid
	serial zodb.Tid
	data   []byte
}

func mustTid(t testing.TB, v *pyval.Value) zodb.Tid {
	t.Helper()
	b, ok := v.AsBytes()
	if !ok || len(b) != 8 {
		t.Fatalf("want a tid, got %s", v)
	}
	return zodb.Tid(binary.BigEndian.Uint64(b))
}

func mustOid(t testing.TB, v *pyval.Value) zodb.Oid {
	t.Helper()
	return zodb.Oid(mustTid(t, v))
}

// newTestServer serves a fresh FileStorage on a loopback port.
func newTestServer(t testing.TB, opts Options) (*Server, net.Addr, *fs.FileStorage) {
	t.Helper()
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := serveTest(t, st, opts)
	t.Cleanup(func() { st.Close() })
	return srv, addr, st
}

func serveTest(t testing.TB, st Storage, opts Options) (*Server, net.Addr) {
	t.Helper()
	srv := NewServer(st, opts)
	addr, err := srv.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, addr
}

// codecs runs f once per codec.
func codecs(t *testing.T, f func(t *testing.T, msgpack bool)) {
	for _, mp := range []bool{false, true} {
		name := "pickle"
		if mp {
			name = "msgpack"
		}
		t.Run(name, func(t *testing.T) { f(t, mp) })
	}
}
