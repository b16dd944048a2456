package zeo

import (
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// BenchmarkCommit measures one client's commits (tpc_begin, storea, vote,
// tpc_finish with its fsync) over loopback TCP. bench/zeo.sh compares
// the server with Python's from real ZODB clients.
func BenchmarkCommit(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	c := dialTest(b, addr, nil)
	c.register(false)
	oid := c.newOid()
	serial := c.commit(1, store{oid, 0, []byte("x")})
	data := make([]byte, 200)
	b.ResetTimer()
	for i := range b.N {
		serial = c.commit(int64(i+2), store{oid, serial, data})
	}
}

// BenchmarkLoadBefore measures loadBefore round trips of a current object.
func BenchmarkLoadBefore(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	c := dialTest(b, addr, nil)
	c.register(false)
	oid := c.newOid()
	c.commit(1, store{oid, 0, make([]byte, 200)})
	b.ResetTimer()
	for range b.N {
		c.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
	}
}

// BenchmarkCommit8 runs 8 clients committing to their own objects at the
// same time: commits serialise on the commit lock and the fsync.
func BenchmarkCommit8(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	const n = 8
	clients := make([]*testClient, n)
	oids := make([]zodb.Oid, n)
	serials := make([]zodb.Tid, n)
	for i := range clients {
		clients[i] = dialTest(b, addr, nil)
		clients[i].skipInvalidations = true
		clients[i].register(false)
		oids[i] = clients[i].newOid()
		serials[i] = clients[i].commit(1, store{oids[i], 0, []byte("x")})
	}
	data := make([]byte, 200)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < b.N; j += n {
				serials[i] = c.commit(int64(j+2), store{oids[i], serials[i], data})
			}
		}()
	}
	wg.Wait()
}

// BenchmarkServeLoadBefore measures loadBefore round trips in
// ClientStorage's own form (the session's fast path) from a client that
// allocates nothing per call, so that allocs/op is the server's.
func BenchmarkServeLoadBefore(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	c := dialTest(b, addr, nil)
	c.register(false)
	oid := c.newOid()
	c.commit(1, store{oid, 0, make([]byte, 200)})
	r := dialRaw(b, addr)
	r.roundTrip(mustEncode(b, &Message{ID: pyval.Int(1), Flags: FlagReply, Name: "register",
		Args: pyval.Tuple(pyval.Str("1"), pyval.Bool(false))}))
	call := append([]byte(nil), loadBeforeCall...)
	for i, v := range []zodb.Tid{zodb.Tid(oid), zodb.MaxTid, zodb.Tid(oid), zodb.MaxTid} {
		binary.BigEndian.PutUint64(call[loadBeforeSlots[i]:], uint64(v))
	}
	frame := AppendFrame(nil, call)
	reply := make([]byte, 4<<10)
	r.conn.SetDeadline(time.Time{})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r.conn, reply[:4]); err != nil {
			b.Fatal(err)
		}
		n := binary.BigEndian.Uint32(reply)
		if _, err := io.ReadFull(r.conn, reply[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
