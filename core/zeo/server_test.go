package zeo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

func TestRegisterInfoAndEmptyLoad(t *testing.T) {
	codecs(t, func(t *testing.T, mp bool) {
		_, addr, _ := newTestServer(t, Options{Msgpack: mp})
		c := dialTest(t, addr, nil)
		if got := c.register(false); got != 0 {
			t.Fatalf("register on an empty storage: %s", got)
		}
		info := c.call("get_info")
		ifs, ok := info.Lookup("interfaces")
		if !ok || ifs.Len() != len(interfaces) {
			t.Fatalf("get_info interfaces: %s", info)
		}
		if v, _ := info.Lookup("supportsUndo"); v == nil {
			t.Fatalf("get_info lacks supportsUndo: %s", info)
		}
		q, payload := c.callErr("loadBefore", oidValue(0), tidValue(1))
		if q != excPOSKeyError || payload.Len() != 1 {
			t.Fatalf("loadBefore of the root of an empty storage: %s %s", q, payload)
		}
		if q, _ := c.callErr("register", pyval.Str("1"), pyval.Bool(false)); q != excValueError {
			t.Fatalf("second register: %s", q)
		}
		if v := c.call("ping"); !v.IsNone() {
			t.Fatalf("ping: %s", v)
		}
	})
}

func TestCallsBeforeRegisterAndUnknownStorage(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	if q, p := c.callErr("lastTransaction"); q != excStorageError || !strings.Contains(p.String(), "register() must be called first") {
		t.Fatalf("lastTransaction before register: %s %s", q, p)
	}
	if q, p := c.callErr("register", pyval.Str("main"), pyval.Bool(false)); q != excValueError {
		t.Fatalf("unknown storage: %s %s", q, p)
	}
}

func TestCommitInvalidatesOthers(t *testing.T) {
	codecs(t, func(t *testing.T, mp bool) {
		_, addr, st := newTestServer(t, Options{Msgpack: mp})
		c1, c2 := dialTest(t, addr, nil), dialTest(t, addr, nil)
		c1.register(false)
		c2.register(true)
		oid := c1.newOid()
		tid := c1.commit(7, store{oid, 0, []byte("first")})
		if st.LastTransaction() != tid {
			t.Fatalf("committed %s, storage last %s", tid, st.LastTransaction())
		}
		inv := c2.expect("invalidateTransaction").Args.Items()
		if got := mustTid(t, inv[0]); got != tid || inv[1].Len() != 1 || mustOid(t, inv[1].Items()[0]) != oid {
			t.Fatalf("invalidation: %s", pyval.Tuple(inv...))
		}
		c1.noOneWay(50 * time.Millisecond) // the committer gets no invalidation
		r := c2.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid)).Items()
		if d, _ := r[0].AsBytes(); string(d) != "first" || mustTid(t, r[1]) != tid || !r[2].IsNone() {
			t.Fatalf("loadBefore: %s", pyval.Tuple(r...))
		}
		if got := mustTid(t, c2.call("lastTransaction")); got != tid {
			t.Fatalf("lastTransaction %s, want %s", got, tid)
		}
		tid2 := c1.commit(8, store{oid, tid, []byte("second")})
		c2.expect("invalidateTransaction")
		r = c2.call("loadBefore", oidValue(oid), tidValue(tid2)).Items()
		if d, _ := r[0].AsBytes(); string(d) != "first" || mustTid(t, r[2]) != tid2 {
			t.Fatalf("loadBefore(tid2): %s", pyval.Tuple(r...))
		}
		if v := c2.call("loadBefore", oidValue(oid), tidValue(tid)); !v.IsNone() {
			t.Fatalf("loadBefore before creation: %s", v)
		}
		if d, _ := c2.call("loadSerial", oidValue(oid), tidValue(tid)).AsBytes(); string(d) != "first" {
			t.Fatalf("loadSerial: %q", d)
		}
		if got := mustTid(t, c2.call("getTid", oidValue(oid))); got != tid2 {
			t.Fatalf("getTid %s", got)
		}
	})
}

func TestConflictsGoBackToTheClient(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c1, c2 := dialTest(t, addr, nil), dialTest(t, addr, nil)
	c1.register(false)
	c2.register(false)
	oid := c1.newOid()
	t1 := c1.commit(1, store{oid, 0, []byte("v1")})
	c2.expect("invalidateTransaction")
	t2 := c1.commit(2, store{oid, t1, []byte("v2")})
	c2.expect("invalidateTransaction")

	// c2 writes based on t1: vote answers a conflict dict and releases the lock.
	c2.begin(5)
	c2.oneWay("storea", oidValue(oid), tidValue(t1), pyval.Bytes([]byte("mine")), pyval.Int(5))
	res := c2.call("vote", pyval.Int(5))
	if res.Len() != 1 {
		t.Fatalf("vote: %s", res)
	}
	d := res.Items()[0]
	serials, _ := d.Lookup("serials")
	data, _ := d.Lookup("data")
	if o, _ := d.Lookup("oid"); mustOid(t, o) != oid || mustTid(t, serials.Items()[0]) != t2 ||
		mustTid(t, serials.Items()[1]) != t1 {
		t.Fatalf("conflict dict: %s", d)
	}
	if b, _ := data.AsBytes(); string(b) != "mine" {
		t.Fatalf("conflict data: %s", data)
	}
	// c2 keeps the commit lock while it resolves: c1's vote waits, so
	// nothing commits over the state c2 resolves against.
	c1.begin(3)
	c1.oneWay("storea", oidValue(oid), tidValue(t2), pyval.Bytes([]byte("v3")), pyval.Int(3))
	c1vote := c1.start("vote", pyval.Int(3))
	select {
	case m := <-c1vote:
		t.Fatalf("c1's vote answered while c2 resolves: %s", m.Args)
	case <-time.After(100 * time.Millisecond):
	}
	c2.oneWay("storea", oidValue(oid), tidValue(t2), pyval.Bytes([]byte("resolved")), pyval.Int(5))
	if res := c2.call("vote", pyval.Int(5)); res.Len() != 0 {
		t.Fatalf("second vote: %s", res)
	}
	t4 := c2.finish(5)
	// Now c1 votes, and conflicts in its turn.
	if m := c1.wait(c1vote, "c1's vote"); m.Flags == FlagError || m.Args.Len() != 1 {
		t.Fatalf("c1's vote after c2 finished: %s", m.Args)
	}
	c1.call("tpc_abort", pyval.Int(3))
	inv := c1.expect("invalidateTransaction").Args.Items()
	if mustTid(t, inv[0]) != t4 {
		t.Fatalf("invalidation %s, want %s", inv[0], t4)
	}
	if d, _ := c1.call("loadSerial", oidValue(oid), tidValue(t4)).AsBytes(); string(d) != "resolved" {
		t.Fatalf("resolved data %q", d)
	}
}

func TestReadConflictAndStorageTransactionErrors(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	a, b := c.newOid(), c.newOid()
	t1 := c.commit(1, store{a, 0, []byte("a1")}, store{b, 0, []byte("b1")})
	t2 := c.commit(2, store{a, t1, []byte("a2")})
	c.begin(3)
	c.oneWay("checkCurrentSerialInTransaction", oidValue(a), tidValue(t1), pyval.Int(3))
	c.oneWay("storea", oidValue(b), tidValue(t1), pyval.Bytes([]byte("b2")), pyval.Int(3))
	q, p := c.callErr("vote", pyval.Int(3))
	if q != excReadConflict {
		t.Fatalf("vote with a stale read: %s %s", q, p)
	}
	serials, _ := p.Lookup("serials")
	if o, _ := p.Lookup("oid"); mustOid(t, o) != a || mustTid(t, serials.Items()[0]) != t2 || mustTid(t, serials.Items()[1]) != t1 {
		t.Fatalf("read conflict payload: %s", p)
	}
	// The transaction is gone server-side: abort is ignored, vote fails.
	if v := c.call("tpc_abort", pyval.Int(3)); !v.IsNone() {
		t.Fatalf("tpc_abort: %s", v)
	}
	if q, _ := c.callErr("vote", pyval.Int(3)); q != excStorageTxn {
		t.Fatalf("vote without a transaction: %s", q)
	}
	// And the lock was released: a new transaction commits.
	c.commit(4, store{b, t1, []byte("b2")})
	if v := c.call("tpc_finish", pyval.Int(99)); !v.IsNone() {
		t.Fatalf("tpc_finish of an unknown transaction: %s", v)
	}
}

func TestVoteWaitsForTheCommitLockWithoutBlockingLoads(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c1, c2 := dialTest(t, addr, nil), dialTest(t, addr, nil)
	c1.register(false)
	c2.register(false)
	a, b := c1.newOid(), c2.newOid()
	c1.begin(1)
	c1.oneWay("storea", oidValue(a), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(1))
	if v := c1.call("vote", pyval.Int(1)); v.Len() != 0 {
		t.Fatal(v)
	}
	c2.begin(2)
	c2.oneWay("storea", oidValue(b), tidValue(0), pyval.Bytes([]byte("b")), pyval.Int(2))
	vote := c2.start("vote", pyval.Int(2))
	// Loads on the waiting connection are served.
	c2.callErr("loadBefore", oidValue(a), tidValue(zodb.MaxTid))
	select {
	case m := <-vote:
		t.Fatalf("vote answered while the lock is held: %s", m.Args)
	case <-time.After(100 * time.Millisecond):
	}
	t1 := c1.finish(1)
	if m := c2.wait(vote, "vote"); m.Flags == FlagError || m.Args.Len() != 0 {
		t.Fatalf("vote after the lock was released: %s", m.Args)
	}
	// c1's commit was published to c2 before c2's own finish reply.
	ch := c2.start("tpc_finish", pyval.Int(2))
	inv := c2.expect("invalidateTransaction")
	if mustTid(t, inv.Args.Items()[0]) != t1 {
		t.Fatalf("invalidation %s", inv.Args)
	}
	c2.expect("info")
	if t2 := mustTid(t, c2.wait(ch, "tpc_finish").Args); t2 <= t1 {
		t.Fatalf("tids %s then %s", t1, t2)
	}
}

func TestDisconnectAbortsAndReleasesTheLock(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	c1, c2 := dialTest(t, addr, nil), dialTest(t, addr, nil)
	c1.register(false)
	c2.register(false)
	a := c1.newOid()
	c1.begin(1)
	c1.oneWay("storea", oidValue(a), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(1))
	c1.call("vote", pyval.Int(1))
	c1.conn.Close()
	tid := c2.commit(2, store{c2.newOid(), 0, []byte("b")})
	if st.LastTransaction() != tid {
		t.Fatal("commit after a disconnected voter did not land")
	}
	if _, _, err := st.Load(t.Context(), a); err == nil {
		t.Fatal("the disconnected client's transaction was committed")
	}
}

func TestGetInvalidationsForAnyTidInTheFile(t *testing.T) {
	srv, addr, _ := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	oids := make([]zodb.Oid, 10)
	for i := range oids {
		oids[i] = c.newOid()
	}
	serial := make(map[zodb.Oid]zodb.Tid)
	var tids []zodb.Tid
	for i := range 300 {
		o := oids[i%len(oids)]
		tid := c.commit(int64(i+1), store{o, serial[o], []byte{byte(i)}})
		serial[o] = tid
		tids = append(tids, tid)
	}
	r := c.call("getInvalidations", tidValue(tids[5]))
	if r.Kind() != pyval.KindTuple || mustTid(t, r.Items()[0]) != tids[299] || r.Items()[1].Len() != len(oids) {
		t.Fatalf("getInvalidations(tid 6 of 300): %s", r)
	}
	r = c.call("getInvalidations", tidValue(tids[297]))
	got := map[zodb.Oid]bool{}
	for _, o := range r.Items()[1].Items() {
		got[mustOid(t, o)] = true
	}
	if len(got) != 2 || !got[oids[298%10]] || !got[oids[299%10]] {
		t.Fatalf("getInvalidations(tid 298): %s", r)
	}
	if r := c.call("getInvalidations", tidValue(tids[10]+1)); !r.IsNone() {
		t.Fatalf("a tid not in the file: %s", r)
	}
	if r := c.call("getInvalidations", tidValue(tids[299]+1000)); !r.IsNone() {
		t.Fatalf("a tid after the last: %s", r)
	}
	if srv.Clients() != 1 {
		t.Fatalf("clients %d", srv.Clients())
	}
}

// TestLoadsNeverOvertakeInvalidations checks the ordering rule: no
// invalidation for T reaches a client before the reply of a load that was
// computed without T (the client would cache stale data as current). With
// pickles, loads take the fast path (fast_pickle.go); with msgpack, the
// generic one: each holds the publication lock its own way. Each load
// pauses between computing its reply and queuing it, so that a commit
// published in that window, were the lock not held across both, would
// send its invalidation first.
func TestLoadsNeverOvertakeInvalidations(t *testing.T) {
	codecs(t, func(t *testing.T, mp bool) {
		var fastLoads atomic.Int64
		_, addr, _ := newTestServer(t, Options{Msgpack: mp, afterLoad: func(fast bool) {
			if fast {
				fastLoads.Add(1)
			}
			time.Sleep(200 * time.Microsecond)
		}})
		w, r := dialTest(t, addr, nil), dialTest(t, addr, nil)
		w.register(false)
		r.register(true)
		oid := w.newOid()
		serial := w.commit(1, store{oid, 0, []byte{0}})
		r.expect("invalidateTransaction")
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				serial = w.commit(int64(i+2), store{oid, serial, []byte{byte(i + 1)}})
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		loads := 0
	loop:
		for {
			select {
			case <-done:
				break loop
			default:
			}
			r.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
			loads++
		}
		time.Sleep(50 * time.Millisecond)
		r.mu.Lock()
		defer r.mu.Unlock()
		var invalidated zodb.Tid
		for _, m := range r.events {
			switch {
			case m.Name == "invalidateTransaction":
				tid := mustTid(t, m.Args.Items()[0])
				if tid <= invalidated {
					t.Fatalf("invalidation tids not increasing: %s after %s", tid, invalidated)
				}
				invalidated = tid
			case m.Flags == FlagReply && m.Args.Kind() == pyval.KindTuple && m.Args.Len() == 3:
				it := m.Args.Items()
				start := mustTid(t, it[1])
				if it[2].IsNone() && start < invalidated {
					t.Fatalf("load reply current as of %s arrived after the invalidation of %s", start, invalidated)
				}
			}
		}
		if loads < 10 {
			t.Fatalf("only %d loads ran during the commits", loads)
		}
		if fast := fastLoads.Load(); (fast > 0) == mp {
			t.Fatalf("%d loads took the fast path (msgpack: %v)", fast, mp)
		}
	})
}

func TestReadOnlyServing(t *testing.T) {
	codecs(t, func(t *testing.T, mp bool) {
		srv, addr, _ := newTestServer(t, Options{Msgpack: mp, ReadOnly: true})
		c := dialTest(t, addr, nil)
		if q, _ := c.callErr("register", pyval.Str("1"), pyval.Bool(false)); q != excReadOnly {
			t.Fatalf("writable register on a read-only server: %s", q)
		}
		// read_only_fallback: the same connection registers read-only.
		c.register(true)
		if q, _ := c.callErr("new_oids"); q != excReadOnly {
			t.Fatalf("new_oids read-only: %s", q)
		}
		// A transaction committed behind the server's back (a replica).
		srv.Invalidate(42, []zodb.Oid{1, 2})
		inv := c.expect("invalidateTransaction").Args.Items()
		if mustTid(t, inv[0]) != 42 || inv[1].Len() != 2 {
			t.Fatalf("invalidation %s", pyval.Tuple(inv...))
		}
		// tpc_begin on a read-only connection closes it (a one-way call failed).
		c.begin(1)
		select {
		case <-c.closed:
		case <-time.After(testTimeout):
			t.Fatal("connection not closed after a read-only tpc_begin")
		}
	})
}

func TestRuokHeartbeatAndUnknownMethod(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p, err := ReadFrame(conn, 64); err != nil || string(p) != "Z5" {
		t.Fatalf("announcement %q %v", p, err)
	}
	conn.Write(AppendFrame(nil, []byte("ruok")))
	p, err := ReadFrame(conn, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(p, &doc); err != nil || doc["1"]["last-transaction"] == nil {
		t.Fatalf("ruok: %s %v", p, err)
	}

	c := dialTest(t, addr, nil)
	c.register(false)
	c.send(&Message{ID: pyval.Int(-1), Flags: FlagReply, Name: ".reply", Args: pyval.None()})
	c.call("ping") // the heartbeat got no answer and broke nothing
	c.mu.Lock()
	n := len(c.events)
	c.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d messages after register, heartbeat and ping; want 2", n)
	}
	c.start("no_such_method")
	select {
	case <-c.closed:
	case <-time.After(testTimeout):
		t.Fatal("an unknown method did not close the connection")
	}
}

func TestBadHandshakeIsRefused(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ReadFrame(conn, 64)
	conn.Write(AppendFrame(nil, []byte("Z4")))
	// The server closes the connection: not a timeout of this read.
	conn.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := ReadFrame(conn, 64); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a Z4 handshake: %v; want the connection closed", err)
	}
}

func TestUndoHistoryAndIteration(t *testing.T) {
	codecs(t, func(t *testing.T, mp bool) {
		_, addr, _ := newTestServer(t, Options{Msgpack: mp})
		c := dialTest(t, addr, nil)
		c.register(false)
		oid := c.newOid()
		t1 := c.commit(1, store{oid, 0, []byte("one")})
		t2 := c.commit(2, store{oid, t1, []byte("two")})

		log := c.call("undoLog", pyval.Int(0), pyval.Int(-20))
		if log.Len() != 2 {
			t.Fatalf("undoLog: %s", log)
		}
		id, _ := log.Items()[0].Lookup("id")
		if u, _ := log.Items()[0].Lookup("user_name"); !bytes.Equal(mustBytes(t, u), []byte("user")) {
			t.Fatalf("undoLog user_name: %s", log.Items()[0])
		}
		info := c.call("undoInfo", pyval.Int(0), pyval.Int(20), pyval.Dict(pyval.Str("description"), pyval.Bytes([]byte("nope"))))
		if info.Len() != 0 {
			t.Fatalf("undoInfo with a non-matching spec: %s", info)
		}
		c.begin(3)
		c.oneWay("undoa", id, pyval.Int(3))
		res := c.call("vote", pyval.Int(3))
		if res.Len() != 1 || mustOid(t, res.Items()[0]) != oid {
			t.Fatalf("vote of an undo: %s", res)
		}
		t3 := c.finish(3)
		r := c.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid)).Items()
		if string(mustBytes(t, r[0])) != "one" || mustTid(t, r[1]) != t3 {
			t.Fatalf("after undo: %s", pyval.Tuple(r...))
		}
		h := c.call("history", oidValue(oid), pyval.Int(10))
		if h.Len() != 3 {
			t.Fatalf("history: %s", h)
		}
		if tid, _ := h.Items()[2].Lookup("tid"); mustTid(t, tid) != t1 {
			t.Fatalf("oldest history entry: %s", h.Items()[2])
		}

		iid := c.call("iterator_start", pyval.None(), pyval.None())
		var seen []zodb.Tid
		for {
			txn := c.call("iterator_next", iid)
			if txn.IsNone() {
				break
			}
			tid := mustTid(t, txn.Items()[0])
			seen = append(seen, tid)
			rid := c.call("iterator_record_start", iid, tidValue(tid))
			rec := c.call("iterator_record_next", rid)
			if mustOid(t, rec.Items()[0]) != oid {
				t.Fatalf("record %s", rec)
			}
			if tid == t3 && (rec.Items()[2].Len() != 3 || mustTid(t, rec.Items()[3]) != t1) {
				t.Fatalf("undo record %s: want data 'one' from %s", rec, t1)
			}
			if v := c.call("iterator_record_next", rid); !v.IsNone() {
				t.Fatalf("second record: %s", v)
			}
		}
		if len(seen) != 3 || seen[0] != t1 || seen[1] != t2 || seen[2] != t3 {
			t.Fatalf("iteration: %v", seen)
		}
		c.oneWay("iterator_gc", pyval.List(iid, pyval.Int(12345)))
		rec := c.call("record_iternext", pyval.None()).Items()
		if mustOid(t, rec[0]) != oid || string(mustBytes(t, rec[2])) != "one" || !rec[3].IsNone() {
			t.Fatalf("record_iternext: %s", pyval.Tuple(rec...))
		}
		if q, _ := c.callErr("pack", pyval.Float(0), pyval.Int(1)); q != excNotImplemented {
			t.Fatalf("pack: %s", q)
		}
		st := c.call("server_status")
		if n, _ := st.Lookup("commits"); n == nil {
			t.Fatalf("server_status: %s", st)
		}
	})
}

func mustBytes(t *testing.T, v *pyval.Value) []byte {
	t.Helper()
	b, ok := v.AsBytes()
	if !ok {
		t.Fatalf("want bytes, got %s", v)
	}
	return b
}

// TestUndoInfoWithZopeUndoPrefix sends the undoInfo call a ZEO 6 client
// makes with a ZopeUndo Prefix (as Zope's undo screen does), byte for
// byte as zodbpickle pickled it: undoInfo(0, 20, {'user_name':
// Prefix('/app')}).
func TestUndoInfoWithZopeUndoPrefix(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	oid := c.newOid()
	var serial zodb.Tid
	for i, user := range []string{"/app alice", "/other bob", "/app/sub carol", "/application dave"} {
		c.oneWay("tpc_begin", pyval.Int(int64(i+1)), pyval.Bytes([]byte(user)), pyval.Bytes(nil), pyval.Dict(), pyval.None(), pyval.Str(" "))
		c.oneWay("storea", oidValue(oid), tidValue(serial), pyval.Bytes([]byte{byte(i)}), pyval.Int(int64(i+1)))
		c.call("vote", pyval.Int(int64(i+1)))
		serial = c.finish(int64(i + 1))
	}
	p, _ := hex.DecodeString("8003284b07895808000000756e646f496e666f4b004b147d5809000000757365725f6e616d65635a6f7065556e646f2e5072656669780a5072656669780a29817d2858060000006c656e6774684b025804000000706174685d28580000000058030000006170706575627387742e")
	c.mu.Lock()
	ch := make(chan *Message, 1)
	c.pending[pyval.Int(7).String()] = ch
	c.mu.Unlock()
	c.conn.Write(AppendFrame(nil, p))
	m := c.wait(ch, "undoInfo")
	var users []string
	for _, e := range m.Args.Items() {
		u, _ := e.Lookup("user_name")
		users = append(users, string(mustBytes(t, u)))
	}
	// Prefix('/app') matches where "app" is a whole path part; the user
	// name after the last space does not count.
	if len(users) != 2 || users[0] != "/app/sub carol" || users[1] != "/app alice" {
		t.Fatalf("undoInfo with Prefix('/app'): %q", users)
	}
}

func TestTransactionTimeoutFreesTheLock(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{TransactionTimeout: 200 * time.Millisecond})
	c1, c2 := dialTest(t, addr, nil), dialTest(t, addr, nil)
	c1.register(false)
	c2.register(false)
	c1.begin(1)
	c1.oneWay("storea", oidValue(c1.newOid()), tidValue(0), pyval.Bytes([]byte("stuck")), pyval.Int(1))
	c1.call("vote", pyval.Int(1))
	// c1 never finishes: c2's commit waits, then goes through.
	start := time.Now()
	c2.commit(2, store{c2.newOid(), 0, []byte("b")})
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("committed after %v, while the lock was held", d)
	}
	select {
	case <-c1.closed:
	case <-time.After(testTimeout):
		t.Fatal("the client holding the lock was not disconnected")
	}
}

// A tpc_finish without a successful vote (a ZEO client gives up after nine
// rounds of conflict resolution and finishes anyway) must not commit.
func TestFinishWithoutVoteIsRefused(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	oid := c.newOid()
	t1 := c.commit(1, store{oid, 0, []byte("v1")})
	c.commit(2, store{oid, t1, []byte("v2")})
	c.begin(3)
	c.oneWay("storea", oidValue(oid), tidValue(t1), pyval.Bytes([]byte("stale")), pyval.Int(3))
	if res := c.call("vote", pyval.Int(3)); res.Len() != 1 {
		t.Fatalf("vote: %s", res)
	}
	last := st.LastTransaction()
	if q, _ := c.callErr("tpc_finish", pyval.Int(3)); q != excStorageTxn {
		t.Fatalf("tpc_finish after an unresolved conflict: %s", q)
	}
	if st.LastTransaction() != last {
		t.Fatal("a transaction was committed without a successful vote")
	}
	c.call("tpc_abort", pyval.Int(3))
	c.commit(4, store{oid, last, []byte("v3")})
}

// openSpillFiles counts this process's open spill files in dir (unlinked
// at creation, so only /proc/self/fd shows them).
func openSpillFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, filepath.Join(dir, "zrs-zeo-txn-")) {
			n++
		}
	}
	return n
}

// A transaction larger than SpillBytes keeps its data in a temporary file
// until vote, closed once the transaction ends; what is committed, and
// conflict data, are unchanged.
func TestLargeTransactionsSpillToDisk(t *testing.T) {
	tmp := t.TempDir()
	_, addr, _ := newTestServer(t, Options{SpillBytes: 4096, TempDir: tmp})
	c := dialTest(t, addr, nil)
	c.register(false)
	var stores []store
	for i := range 50 {
		stores = append(stores, store{c.newOid(), 0, bytes.Repeat([]byte{byte(i)}, 1000)})
	}
	tid := c.commit(1, stores...)
	for i, s := range stores {
		got := mustBytes(t, c.call("loadSerial", oidValue(s.oid), tidValue(tid)))
		if !bytes.Equal(got, s.data) {
			t.Fatalf("object %d: %d bytes, want %d of %d", i, len(got), len(s.data), i)
		}
	}
	// A conflict on a spilled store hands back the spilled data.
	c.begin(2)
	for _, s := range stores[:10] {
		c.oneWay("storea", oidValue(s.oid), tidValue(tid), pyval.Bytes(bytes.Repeat([]byte("n"), 1000)), pyval.Int(2))
	}
	c.oneWay("storea", oidValue(stores[10].oid), tidValue(0), pyval.Bytes([]byte("stale")), pyval.Int(2))
	c.call("lastTransaction") // answered after the stores before it
	if n := openSpillFiles(t, tmp); n != 1 {
		t.Fatalf("%d spill files open for a transaction of 11 kB (SpillBytes 4096), want 1", n)
	}
	res := c.call("vote", pyval.Int(2))
	if res.Len() != 1 {
		t.Fatalf("vote: %s", res)
	}
	if d, _ := res.Items()[0].Lookup("data"); string(mustBytes(t, d)) != "stale" {
		t.Fatalf("conflict data %s", d)
	}
	c.call("tpc_abort", pyval.Int(2))
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("spill files left behind: %v", ents)
	}
	if n := openSpillFiles(t, tmp); n != 0 {
		t.Fatalf("%d spill files still open after the commit and the abort", n)
	}
}

// restorea keeps the given serial and data_txn (copy tools, zodbconvert);
// deleteObject (IExternalGC) leaves a record without data.
func TestRestoreAndDeleteObject(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	tid1, tid2 := zodb.MakeTid(2020, 1, 2, 3, 4, 5), zodb.MakeTid(2020, 1, 2, 3, 4, 6)
	for i, tid := range []zodb.Tid{tid1, tid2} {
		c.oneWay("tpc_begin", pyval.Int(int64(i+1)), pyval.Bytes(nil), pyval.Bytes([]byte("copied")), pyval.Dict(), tidValue(tid), pyval.Str(" "))
		prev := pyval.None()
		data := pyval.Bytes([]byte("restored"))
		if i == 1 {
			prev = tidValue(tid1) // a backpointer to the same data in tid1
		}
		c.oneWay("restorea", oidValue(5), tidValue(tid), data, prev, pyval.Int(int64(i+1)))
		c.call("vote", pyval.Int(int64(i+1)))
		if got := c.finish(int64(i + 1)); got != tid {
			t.Fatalf("restored transaction committed as %s, want %s", got, tid)
		}
	}
	it, err := st.Iterate(t.Context(), 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	it.Next(t.Context())
	second, err := it.Next(t.Context())
	if err != nil || second.Records[0].DataTxn != tid1 || string(second.Records[0].Data) != "restored" {
		t.Fatalf("second restored transaction: %+v %v", second, err)
	}
	c.begin(3)
	c.oneWay("deleteObject", oidValue(5), tidValue(tid2), pyval.Int(3))
	c.call("vote", pyval.Int(3))
	c.finish(3)
	if q, _ := c.callErr("loadBefore", oidValue(5), tidValue(zodb.MaxTid)); q != excPOSKeyError {
		t.Fatalf("load of a deleted object: %s", q)
	}
	if d := mustBytes(t, c.call("loadSerial", oidValue(5), tidValue(tid1))); string(d) != "restored" {
		t.Fatalf("older revision: %q", d)
	}
}

// tpc_begin with None for the extension (ClientStorage sends a dict, but
// Python's server takes None as an empty one) commits with an empty
// extension; it used to crash the server.
func TestTpcBeginNoneExtension(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	oid := c.newOid()
	c.oneWay("tpc_begin", pyval.Int(1), pyval.Bytes([]byte("u")), pyval.Bytes([]byte("d")), pyval.None(), pyval.None(), pyval.Str(" "))
	c.oneWay("storea", oidValue(oid), tidValue(0), pyval.Bytes([]byte("x")), pyval.Int(1))
	if v := c.call("vote", pyval.Int(1)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	tid := c.finish(1)
	it, err := st.Iterate(context.Background(), tid, tid)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	info, err := it.Next(context.Background())
	if err != nil || info.Tid != tid || len(info.Extension) != 0 || string(info.User) != "u" {
		t.Fatalf("committed %+v, %v", info, err)
	}
}

// Shutdown waits only for the transactions in progress when it begins:
// an idle client is disconnected at once, a client in a transaction gets
// to finish it (its reply arrives) and is disconnected then, and the wait
// ends there, long before the grace period.
func TestShutdownDrains(t *testing.T) {
	srv, addr, st := newTestServer(t, Options{})
	busy := dialRegistered(t, addr)
	idle := dialRegistered(t, addr)
	oid := busy.newOid()
	busy.begin(1)
	busy.oneWay("storea", oidValue(oid), tidValue(0), pyval.Bytes([]byte("in flight")), pyval.Int(1))
	for srv.stats.active.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	const grace = 20 * time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	select {
	case <-idle.closed:
	case <-time.After(testTimeout):
		t.Fatal("an idle client is still connected while the server drains")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before the transaction in progress ended", err)
	case <-busy.closed:
		t.Fatal("the client in a transaction was disconnected before it could finish")
	case <-time.After(100 * time.Millisecond):
	}
	if v := busy.call("vote", pyval.Int(1)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	tid := busy.finish(1)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > grace/2 {
		t.Errorf("Shutdown took %v: it waited for more than the transaction in progress", took)
	}
	select {
	case <-busy.closed:
	case <-time.After(testTimeout):
		t.Fatal("the client is still connected after its transaction and the shutdown")
	}
	if data, serial, err := st.Load(context.Background(), oid); err != nil || serial != tid || string(data) != "in flight" {
		t.Fatalf("the commit finished during the shutdown: %q %s %v; want it at %s", data, serial, err, tid)
	}
}

// record_iternext skips deleted objects, next_oid included: when the
// object with the highest oid is gone, the record before it ends the
// iteration (next_oid None) rather than pointing at it.
func TestRecordIternextSkipsATrailingDeletion(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialRegistered(t, addr)
	a, b := c.newOid(), c.newOid()
	tid := c.commit(1, store{a, 0, []byte("a")}, store{b, 0, []byte("b")})
	c.begin(2)
	c.oneWay("deleteObject", oidValue(b), tidValue(tid), pyval.Int(2))
	if v := c.call("vote", pyval.Int(2)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	c.finish(2)
	it := c.call("record_iternext", pyval.None()).Items()
	if mustOid(t, it[0]) != a || !it[3].IsNone() {
		t.Fatalf("record_iternext(None) = %s; want %s's record and no next oid", pyval.Tuple(it...), a)
	}
}

// history: the revision's own keys win over extension keys of the same
// name, as in FileStorage.history.
func TestHistoryRevisionKeysWinOverTheExtension(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialRegistered(t, addr)
	oid := c.newOid()
	ext := pyval.Dict(pyval.Str("tid"), pyval.Str("ticket-42"), pyval.Str("size"), pyval.Str("XL"), pyval.Str("kept"), pyval.Int(1))
	c.oneWay("tpc_begin", pyval.Int(1), pyval.Bytes([]byte("user")), pyval.Bytes([]byte("desc")), ext, pyval.None(), pyval.Str(" "))
	c.oneWay("storea", oidValue(oid), pyval.None(), pyval.Bytes([]byte("data")), pyval.Int(1))
	if v := c.call("vote", pyval.Int(1)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	tid := c.finish(1)
	h := c.call("history", oidValue(oid), pyval.Int(1)).Items()[0]
	got, _ := h.Lookup("tid")
	size, _ := h.Lookup("size")
	kept, _ := h.Lookup("kept")
	if n, ok := size.AsInt(); !ok || n != 4 || mustTid(t, got) != tid {
		t.Errorf("history tid %s size %s; want the revision's %s and 4", got, size, tid)
	}
	if n, ok := kept.AsInt(); !ok || n != 1 {
		t.Errorf("history lost the extension's own key: %s", h)
	}
}

// A transaction whose extension holds more than plain values (here a
// datetime, as an application using FileStorage directly may set with
// setExtendedInfo in Python) stays in the undo log and in history, with
// its plain extension items only: ZEO clients refuse to unpickle a
// datetime, and would lose the whole reply (with ZEO's own server, the
// client's connection breaks). Iterating it is an error naming the
// transaction, not a reply the client cannot read.
func TestUndoLogKeepsATransactionWithAnOpaqueExtension(t *testing.T) {
	srv, addr, st := newTestServer(t, Options{})
	// pickle.dumps({'t': datetime.datetime(2020, 1, 1), 'user_id': 'alice'}, 3)
	ext, _ := hex.DecodeString("80037d7100285801000000747101636461746574696d650a6461746574696d650a7102430a07e4010100000000000071038571045271055807000000757365725f696471065805000000616c6963657107752e")
	oid, tid := commitBehind(t, srv, st, zodb.TxnMeta{Description: []byte("opaque"), Extension: ext})
	c := dialRegistered(t, addr)
	log := c.call("undoLog", pyval.Int(0), pyval.Int(10)).Items()
	if len(log) != 1 {
		t.Fatalf("undo log %s; want the transaction", pyval.List(log...))
	}
	if d, _ := log[0].Lookup("description"); !bytes.Equal(mustBytes(t, d), []byte("opaque")) {
		t.Errorf("undo log entry %s", log[0])
	}
	if _, ok := log[0].Lookup("t"); ok {
		t.Errorf("undo log entry %s carries the datetime ZEO clients cannot unpickle", log[0])
	}
	if u, _ := log[0].Lookup("user_id"); u == nil || u.String() != "'alice'" {
		t.Errorf("undo log entry %s lacks the extension's plain item", log[0])
	}
	iid := c.call("iterator_start", pyval.None(), pyval.None())
	for range 2 { // and again: a retry must not skip the transaction
		if exc, v := c.callErr("iterator_next", iid); exc == "" || !strings.Contains(v.String(), tid.String()) {
			t.Errorf("iterator_next: %s %s; want an error naming %s", exc, v, tid)
		}
	}
	// history too keeps the revision.
	h := c.call("history", oidValue(oid), pyval.Int(5)).Items()
	if len(h) != 1 {
		t.Fatalf("history %s; want the revision", pyval.List(h...))
	}
	if got, _ := h[0].Lookup("tid"); mustTid(t, got) != tid {
		t.Errorf("history entry %s", h[0])
	}
}

// A TransactionTimeout timer that fires just as its holder releases the
// lock (too late for Stop to prevent its function) must not disconnect
// the holder, whose tpc_finish reply would be lost, whether or not
// another client holds the lock by then; one that fires while the lock is
// held does.
func TestLateLockTimerSparesFinishedHolder(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{TransactionTimeout: time.Hour})
	a, b := net.Pipe()
	defer b.Close()
	ss := newSession(srv, a)
	closed := func() bool {
		ss.qmu.Lock()
		defer ss.qmu.Unlock()
		return ss.qclosed
	}
	timer := func() uint64 {
		srv.timerMu.Lock()
		defer srv.timerMu.Unlock()
		return srv.lockGen
	}
	if err := srv.acquireCommit(context.Background(), ss); err != nil {
		t.Fatal(err)
	}
	late := timer()
	srv.releaseCommit()
	srv.lockExpired(late, ss)
	if closed() {
		t.Fatal("a timer firing after the lock's release disconnected its former holder")
	}
	// The same, with another client holding the lock by then: its own
	// timer runs, and the old one still spares the former holder.
	c, d := net.Pipe()
	defer d.Close()
	other := newSession(srv, c)
	if err := srv.acquireCommit(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	srv.lockExpired(late, ss)
	if closed() {
		t.Fatal("a timer firing after the lock passed to another client disconnected its former holder")
	}
	srv.releaseCommit()
	if err := srv.acquireCommit(context.Background(), ss); err != nil {
		t.Fatal(err)
	}
	srv.lockExpired(timer(), ss)
	if !closed() {
		t.Error("a timer firing while the lock is held did not disconnect the holder")
	}
	srv.releaseCommit()
}

// server_status counts as ZEO's StorageServer does: "connections" are the
// registered clients (not every open socket), and "stores" counts
// storea, restorea and deleteObject.
func TestServerStatusCountsAsZEO(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialRegistered(t, addr)
	dialTest(t, addr, nil) // connected, never registers
	status := func(key string) int64 {
		t.Helper()
		v, ok := c.call("server_status").Lookup(key)
		if !ok {
			t.Fatalf("server_status has no %q", key)
		}
		n, ok := v.AsInt()
		if !ok {
			t.Fatalf("server_status[%q] = %s", key, v)
		}
		return n
	}
	if n := status("connections"); n != 1 {
		t.Errorf("connections = %d with one registered client and one that is not, want 1", n)
	}
	oid := c.newOid()
	tid := c.commit(1, store{oid, 0, []byte("a")})
	before := status("stores")
	c.begin(2)
	c.oneWay("deleteObject", oidValue(oid), tidValue(tid), pyval.Int(2))
	c.oneWay("restorea", oidValue(c.newOid()), tidValue(tid), pyval.Bytes([]byte("b")), pyval.None(), pyval.Int(2))
	c.oneWay("storea", oidValue(c.newOid()), pyval.None(), pyval.Bytes([]byte("c")), pyval.Int(2))
	if n := status("stores") - before; n != 3 {
		t.Errorf("stores went up by %d for a deleteObject, a restorea and a storea, want 3", n)
	}
	c.oneWay("tpc_abort", pyval.Int(2))
}

// A call with the wrong number of arguments is a TypeError, as Python's
// server raises calling the method, not a StorageError.
func TestWrongArgumentCountIsTypeError(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialRegistered(t, addr)
	for _, call := range []struct {
		name string
		args []*pyval.Value
	}{
		{"loadBefore", []*pyval.Value{oidValue(0)}},
		{"new_oids", []*pyval.Value{pyval.Int(1), pyval.Int(2)}},
		{"history", nil},
	} {
		if q, v := c.callErr(call.name, call.args...); q != excTypeError {
			t.Errorf("%s with %d arguments: %s %s, want %s", call.name, len(call.args), q, v, excTypeError)
		}
	}
}

// Past SpillBytes every data call goes to the spill file whole, not only
// its data: a transaction of many small calls (an import, a migration, a
// mass deleteObject) keeps no per-call memory until vote, as ZEO's commit
// log. The calls replay in order at vote.
func TestSpilledTransactionKeepsNoPerCallMemory(t *testing.T) {
	tmp := t.TempDir()
	srv, addr, _ := newTestServer(t, Options{SpillBytes: 4096, TempDir: tmp})
	c := dialRegistered(t, addr)
	gone := c.newOid()
	goneTid := c.commit(1, store{gone, 0, []byte("to delete")})
	const n = 5000
	oids := make([]zodb.Oid, n)
	c.begin(2)
	for i := range oids {
		oids[i] = c.newOid()
		c.oneWay("storea", oidValue(oids[i]), pyval.None(), pyval.Bytes([]byte{byte(i)}), pyval.Int(2))
	}
	c.oneWay("deleteObject", oidValue(gone), tidValue(goneTid), pyval.Int(2))
	c.call("ping") // every call above is recorded
	srv.pub.RLock()
	var inMemory, spilled int
	for ss := range srv.sessions {
		ss.tmu.Lock()
		if ss.txn != nil {
			inMemory, spilled = len(ss.txn.ops), ss.txn.spillN
		}
		ss.tmu.Unlock()
	}
	srv.pub.RUnlock()
	if inMemory+spilled != n+1 || inMemory > 4096/64 {
		t.Fatalf("%d calls in memory and %d spilled; want at most %d in memory of %d", inMemory, spilled, 4096/64, n+1)
	}
	if v := c.call("vote", pyval.Int(2)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	tid := c.finish(2)
	for i, oid := range oids {
		if got := mustBytes(t, c.call("loadSerial", oidValue(oid), tidValue(tid))); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("object %d: %x", i, got)
		}
	}
	if q, _ := c.callErr("loadBefore", oidValue(gone), tidValue(tid+1)); q != excPOSKeyError {
		t.Fatalf("the spilled deleteObject: loadBefore after it gives %s, want POSKeyError", q)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("spill files left behind: %v", ents)
	}
}

// getTid answers as Python's FileStorage.getTid: an object whose creation
// was undone three times ends on a record that points back to the undone
// creation; it cannot be loaded, but getTid returns that record's tid.
func TestGetTidOfBackpointerToUndoneCreation(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialRegistered(t, addr)
	oid := c.newOid()
	c.commit(1, store{oid, 0, []byte("created")})
	undoLatest := func(txn int64) zodb.Tid {
		t.Helper()
		log := c.call("undoLog", pyval.Int(0), pyval.Int(-1))
		id, _ := log.Items()[0].Lookup("id")
		c.begin(txn)
		c.oneWay("undoa", id, pyval.Int(txn))
		if res := c.call("vote", pyval.Int(txn)); res.Len() != 1 {
			t.Fatalf("vote of an undo: %s", res)
		}
		return c.finish(txn)
	}
	undoLatest(2) // the creation undone
	if q, _ := c.callErr("getTid", oidValue(oid)); q != excPOSKeyError {
		t.Fatalf("getTid of an undone creation: %s, want POSKeyError", q)
	}
	undoLatest(3)       // back
	u3 := undoLatest(4) // a backpointer to the undone creation
	if q, _ := c.callErr("loadBefore", oidValue(oid), tidValue(zodb.MaxTid)); q != excPOSKeyError {
		t.Fatalf("loadBefore after the third undo: %s, want POSKeyError", q)
	}
	if got := mustTid(t, c.call("getTid", oidValue(oid))); got != u3 {
		t.Fatalf("getTid after the third undo: %s, want %s (as Python's getTid)", got, u3)
	}
}

// An extension whose pickle shares one list many times over (22 levels
// of [a, a]: millions of leaves written out, as ZEO replies are pickled
// without the memo) — which only a local program writing the file could
// store — is left out of undoLog entries and refused by iterator_next,
// rather than expanded into a reply.
func TestExtensionSharedTooManyTimesOver(t *testing.T) {
	srv, addr, st := newTestServer(t, Options{})
	// {'k': l22} where l0 = 'x' and l(i+1) = [li, li], each level put in
	// the memo and popped, the last one fetched back.
	ext := []byte("\x80\x03}q\x00X\x01\x00\x00\x00kq\x01X\x01\x00\x00\x00xq\x020")
	for i := range 22 {
		ext = append(ext, '(', 'h', byte(i+2), 'h', byte(i+2), 'l', 'q', byte(i+3), '0')
	}
	ext = append(ext, 'h', 24, 's', '.')
	if _, ok := mustExtension(t, ext).TreeSize(1 << 20); ok {
		t.Fatal("test set-up: the extension does not expand")
	}
	_, tid := commitBehind(t, srv, st, zodb.TxnMeta{Description: []byte("shared"), Extension: ext})
	c := dialRegistered(t, addr)
	log := c.call("undoLog", pyval.Int(0), pyval.Int(10)).Items()
	if len(log) != 1 {
		t.Fatalf("undo log %s", pyval.List(log...))
	}
	if _, ok := log[0].Lookup("k"); ok {
		t.Error("the undo log entry carries the expanded extension")
	}
	iid := c.call("iterator_start", pyval.None(), pyval.None())
	if exc, v := c.callErr("iterator_next", iid); exc == "" || !strings.Contains(v.String(), tid.String()) {
		t.Errorf("iterator_next: %s %s; want an error naming %s", exc, v, tid)
	}
}

// commitBehind commits one new object with meta straight to the server's
// storage and publishes it, as a commit behind the server's back.
func commitBehind(t *testing.T, srv *Server, st zodb.Storage, meta zodb.TxnMeta) (zodb.Oid, zodb.Tid) {
	t.Helper()
	oid, tid := testutil.CommitNewObject(t, st, meta, zodb.BeginOptions{}, []byte("x"))
	srv.Invalidate(tid, []zodb.Oid{oid})
	return oid, tid
}

func mustExtension(t *testing.T, ext []byte) *pyval.Value {
	t.Helper()
	v, err := pyval.ExtensionDict(ext)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// One message may be as large as the largest transaction the server
// accepts (an application storing one big object, which Python's server
// takes): the message limit of a writable client follows
// --zeo-max-txn-mb. A message over it closes the connection with a log
// that says which setting to raise. A client that did not register
// writable stores nothing: past FrameOverhead its message is refused, so
// that a read-only server never buffers one as large.
func TestMessageLimitFollowsTheTransactionLimit(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	_, addr, _ := newTestServer(t, Options{MaxTxnBytes: 512 << 20, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	const (
		none = iota
		readOnly
		writable
	)
	// closed registers as told, declares a message of n bytes, sends a
	// few of them and ends its side; it returns the server's log line
	// about the connection.
	closed := func(i int, reg int, n uint32) string {
		t.Helper()
		c := dialTest(t, addr, nil)
		if reg != none {
			c.register(reg == readOnly)
		}
		hdr := binary.BigEndian.AppendUint32(nil, n)
		c.conn.Write(append(hdr, "\x80\x03(K\x01"...))
		c.conn.(*net.TCPConn).CloseWrite()
		select {
		case <-c.closed: // the server closed its side
		case <-time.After(testTimeout):
			t.Fatal("the server did not close the connection")
		}
		for deadline := time.Now().Add(testTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			var ends []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "closing connection") {
					ends = append(ends, l)
				}
			}
			if len(ends) > i {
				return ends[i]
			}
		}
		t.Fatalf("no log of the connection's end: %s", logs)
		return ""
	}
	if line := closed(0, writable, 300<<20); strings.Contains(line, "too large") {
		t.Fatalf("a 300 MiB message refused under a 512 MiB transaction limit: %s", line)
	}
	line := closed(1, writable, 512<<20+FrameOverhead+1)
	if !strings.Contains(line, "too large") || !strings.Contains(line, "--zeo-max-txn-mb") {
		t.Fatalf("a message over the limit: %s; want it refused, naming --zeo-max-txn-mb", line)
	}
	if line := closed(2, readOnly, FrameOverhead); strings.Contains(line, "too large") {
		t.Fatalf("a read-only client's message of FrameOverhead bytes refused: %s", line)
	}
	for i, reg := range []int{readOnly, none} {
		line := closed(3+i, reg, FrameOverhead+1)
		if !strings.Contains(line, "too large") || !strings.Contains(line, "before a writable register") {
			t.Fatalf("a message of FrameOverhead+1 bytes from a client registered %d: %s; want it refused", reg, line)
		}
	}
}

// countingLoads counts the storage's LoadBefore calls.
type countingLoads struct {
	*fs.FileStorage
	loads atomic.Int64
}

func (c *countingLoads) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	c.loads.Add(1)
	return c.FileStorage.LoadBefore(ctx, oid, before)
}

// record_iternext loads each object once over a whole iteration (the
// record it loaded ahead to name the next oid is the next call's answer),
// and a commit between two calls is seen: the record loaded ahead is
// loaded again.
func TestRecordIternextLoadsEachObjectOnce(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl := &countingLoads{FileStorage: st}
	_, addr := serveTest(t, cl, Options{})
	c := dialRegistered(t, addr)
	const n = 20
	var stores []store
	for i := range n {
		stores = append(stores, store{c.newOid(), 0, []byte(fmt.Sprint("v", i))})
	}
	tid := c.commit(1, stores...)
	cl.loads.Store(0)
	var got []string
	next := pyval.None()
	for i := 0; ; i++ {
		if i == n/2 {
			// Change the record the last call loaded ahead.
			oid := mustOid(t, next)
			c.commit(2, store{oid, tid, []byte("changed")})
		}
		it := c.call("record_iternext", next).Items()
		got = append(got, string(mustBytes(t, it[2])))
		if next = it[3]; next.IsNone() {
			break
		}
	}
	if len(got) != n || got[n/2] != "changed" || got[n/2-1] != fmt.Sprint("v", n/2-1) || got[n-1] != fmt.Sprint("v", n-1) {
		t.Fatalf("records %q; want v0..v%d with the %dth changed", got, n-1, n/2)
	}
	// One load per object, and one more for the record the commit made stale.
	if loads := cl.loads.Load(); loads != n+1 {
		t.Fatalf("%d loads for %d objects", loads, n)
	}
}
