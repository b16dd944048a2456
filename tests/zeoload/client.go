package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/core/zodb"
)

// client is one ZEO 5 connection. Each benchmark client does one thing
// after another, so there is at most one call in flight and its reply is
// the next reply the server sends: call reads the connection itself until
// that reply arrives, dropping on the way the one-way messages the server
// sends on its own (info after our own commits, invalidateTransaction
// after everybody else's). A first version had a reader goroutine per
// connection handing replies over through a channel: on a 2-core VM that
// cost 20-30 µs more client CPU and latency per loadBefore round trip (a
// thread wake-up per reply), which is what this client must not add.
type client struct {
	conn  net.Conn
	br    *bufio.Reader
	codec zeo.Codec
	out   []byte // encoded one-way calls, written with the next call
	next  int64  // the last integer msgid used
}

// maxFrame bounds one message from the server (a loadBefore reply, here).
const maxFrame = 64 << 20

// dial connects to addr (host:port, or a unix socket path: anything with
// a "/"), does the ZEO handshake and registers writable for storage "1",
// as ClientStorage does.
func dial(ctx context.Context, addr string) (*client, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := handshake(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if _, err := c.call("register", nil, pyval.Str("1"), pyval.Bool(false)); err != nil {
		c.close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// handshake reads the server's protocol frame ("Z5": pickles, "M5":
// msgpack) and answers it as ClientStorage does: the same encoding, and
// the lower of the server's version and ours (5).
func handshake(conn net.Conn) (*client, error) {
	br := bufio.NewReaderSize(conn, 64<<10)
	p, err := zeo.ReadFrame(br, 64)
	if err != nil {
		return nil, fmt.Errorf("reading the server's protocol: %w", err)
	}
	if len(p) < 2 {
		return nil, fmt.Errorf("server announced protocol %q", p)
	}
	codec, ok := zeo.CodecFor(p[0])
	if !ok || string(p[1:]) < "5" {
		return nil, fmt.Errorf("server announced protocol %q; this client speaks Z5 and M5", p)
	}
	if _, err := conn.Write(zeo.AppendFrame(nil, []byte{p[0], '5'})); err != nil {
		return nil, err
	}
	return &client{conn: conn, br: br, codec: codec}, nil
}

func (c *client) close() { c.conn.Close() }

// oneWay queues a call without a reply; it is written with the next call,
// so a commit's tpc_begin and storea travel with its vote.
func (c *client) oneWay(name string, args ...*pyval.Value) error {
	p, err := c.codec.Encode(&zeo.Message{ID: pyval.Int(0), Flags: zeo.FlagOneWay, Name: name, Args: pyval.Tuple(args...)})
	if err != nil {
		return err
	}
	c.out = zeo.AppendFrame(c.out, p)
	return nil
}

// call sends a call (after any queued one-way calls) and returns its
// reply. id nil means the next integer msgid; an error reply is an error.
func (c *client) call(name string, id *pyval.Value, args ...*pyval.Value) (*pyval.Value, error) {
	if id == nil {
		c.next++
		id = pyval.Int(c.next)
	}
	p, err := c.codec.Encode(&zeo.Message{ID: id, Flags: zeo.FlagReply, Name: name, Args: pyval.Tuple(args...)})
	if err != nil {
		return nil, err
	}
	c.out = zeo.AppendFrame(c.out, p)
	_, err = c.conn.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for {
		p, err := zeo.ReadFrame(c.br, maxFrame)
		if err != nil {
			return nil, fmt.Errorf("%s: waiting for the reply: %w", name, err)
		}
		m, err := c.codec.Decode(p)
		if err != nil {
			return nil, fmt.Errorf("%s: waiting for the reply: %w", name, err)
		}
		if m.Flags == zeo.FlagOneWay {
			continue // info, invalidateTransaction: a benchmark keeps no cache
		}
		if !pyval.Equal(m.ID, id) {
			return nil, fmt.Errorf("%s: got the reply to msgid %s, want %s", name, m.ID, id)
		}
		if m.Flags == zeo.FlagError {
			return nil, fmt.Errorf("%s: the server answered with an error: %s", name, m.Args)
		}
		return m.Args, nil
	}
}

// newOids calls new_oids() as ClientStorage does, without an argument:
// the server hands out 100.
func (c *client) newOids() ([]zodb.Oid, error) {
	v, err := c.call("new_oids", nil)
	if err != nil {
		return nil, err
	}
	var oids []zodb.Oid
	for _, it := range v.Items() {
		t, err := tidOf(it)
		if err != nil {
			return nil, fmt.Errorf("new_oids: %w", err)
		}
		oids = append(oids, zodb.Oid(t))
	}
	if len(oids) == 0 {
		return nil, fmt.Errorf("new_oids returned %s", v)
	}
	return oids, nil
}

// store is one storea of a commit: serial is the object's current serial
// (0 for a new object, sent as 8 zero bytes as ZODB's Connection does).
type store struct {
	oid    zodb.Oid
	serial zodb.Tid
	data   []byte
}

// Transaction metadata, as ClientStorage sends it: user and description
// are bytes, the extension a dict.
var (
	txnUser = pyval.Bytes([]byte("zeoload"))
	txnDesc = pyval.Bytes([]byte("benchmark commit"))
)

// commit is ClientStorage's two-phase commit: tpc_begin(id, user,
// description, extension, tid, status) and storea(oid, serial, data, id),
// both one-way, then vote(id) and tpc_finish(id), which returns the new
// tid. txn stands for ClientStorage's id(transaction).
func (c *client) commit(txn int64, stores ...store) (zodb.Tid, error) {
	id := pyval.Int(txn)
	if err := c.oneWay("tpc_begin", id, txnUser, txnDesc, pyval.Dict(), pyval.None(), pyval.Str(" ")); err != nil {
		return 0, err
	}
	for _, s := range stores {
		if err := c.oneWay("storea", p64(uint64(s.oid)), p64(uint64(s.serial)), pyval.Bytes(s.data), id); err != nil {
			return 0, err
		}
	}
	v, err := c.call("vote", nil, id)
	if err != nil {
		return 0, err
	}
	if !v.IsNone() && v.Len() != 0 {
		// Resolved conflicts or conflicts to resolve: never expected,
		// each client writes its own objects.
		return 0, fmt.Errorf("vote returned %.200s", v)
	}
	v, err = c.call("tpc_finish", nil, id)
	if err != nil {
		return 0, err
	}
	tid, err := tidOf(v)
	if err != nil {
		return 0, fmt.Errorf("tpc_finish: %w", err)
	}
	return tid, nil
}

// maxTid is what ClientStorage passes to loadBefore for "the current
// revision".
var maxTid = p64(1<<63 - 1)

// loadBefore(oid, maxtid) → (data, start tid, end tid or None), with the
// msgid ClientStorage uses, the (oid, tid) argument tuple itself.
func (c *client) loadCurrent(oid zodb.Oid) (data []byte, start zodb.Tid, err error) {
	o := p64(uint64(oid))
	v, err := c.call("loadBefore", pyval.Tuple(o, maxTid), o, maxTid)
	if err != nil {
		return nil, 0, err
	}
	it := v.Items()
	if len(it) != 3 || !it[2].IsNone() {
		return nil, 0, fmt.Errorf("loadBefore(%s): %.200s, want (data, tid, None)", oid, v)
	}
	data, ok := it[0].AsBytes()
	if !ok {
		return nil, 0, fmt.Errorf("loadBefore(%s): data is %.100s", oid, it[0])
	}
	start, err = tidOf(it[1])
	if err != nil {
		return nil, 0, fmt.Errorf("loadBefore(%s): %w", oid, err)
	}
	return data, start, nil
}

// p64 is an oid or tid on the wire: 8 bytes, big-endian.
func p64(x uint64) *pyval.Value {
	b := zodb.Tid(x).Bytes()
	return pyval.Bytes(b[:])
}

func tidOf(v *pyval.Value) (zodb.Tid, error) {
	b, ok := v.AsBytes()
	if !ok || len(b) != 8 {
		return 0, fmt.Errorf("want 8 bytes, got %.100s", v)
	}
	return zodb.TidFromBytes(b)
}
