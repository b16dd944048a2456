package zeo

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Writers committing at once (their commits may share fsyncs: tpc_finish
// hands on the commit lock before the fsync; how many do is logged, not
// asserted, as it depends on the machine's timing — the held-storage
// tests below pin the hand-off itself) while a reader watches: every
// commit's invalidation reaches the reader, in tid order; a vote that
// conflicts with a commit still waiting for its fsync answers only once
// that commit is published, so the client can load it (loadSerial) and
// resolve; and the shared counter the writers resolve counts every
// increment.
func TestGroupCommitPublishesInOrder(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	setup := dialTest(t, addr, nil)
	setup.register(false)
	counter := setup.newOid()
	setup.commit(1, store{counter, 0, []byte("0")})

	reader := dialTest(t, addr, nil)
	reader.register(true)
	fsyncsBefore := st.Fsyncs()

	const writers, rounds = 6, 30
	var mu sync.Mutex
	committed := map[zodb.Tid]bool{}
	increments := 0
	var wg sync.WaitGroup
	for w := range writers {
		c := dialTest(t, addr, nil)
		c.skipInvalidations = true
		c.register(false)
		own := c.newOid()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ownSerial zodb.Tid
			for i := range rounds {
				txn := int64(w*1000 + i + 10)
				inc := i%3 == 0
				var cur []byte
				var curSerial zodb.Tid
				if inc {
					// What the client sees now; by vote it is often
					// stale, and the vote hands back a conflict.
					v := c.call("loadBefore", oidValue(counter), tidValue(zodb.MaxTid))
					cur, _ = v.Items()[0].AsBytes()
					curSerial = mustTid(t, v.Items()[1])
				}
				c.begin(txn)
				c.oneWay("storea", oidValue(own), tidValue(ownSerial), pyval.Bytes(fmt.Appendf(nil, "w%d r%d", w, i)), pyval.Int(txn))
				if inc {
					n, _ := strconv.Atoi(string(cur))
					c.oneWay("storea", oidValue(counter), tidValue(curSerial), pyval.Bytes(strconv.AppendInt(nil, int64(n+1), 10)), pyval.Int(txn))
				}
				for v := c.call("vote", pyval.Int(txn)); v.Len() != 0; v = c.call("vote", pyval.Int(txn)) {
					for _, cf := range v.Items() {
						sv, _ := cf.Lookup("serials")
						committedSerial := mustTid(t, sv.Items()[0])
						// The committed revision must load now.
						m := c.wait(c.start("loadSerial", oidValue(counter), tidValue(committedSerial)), "loadSerial")
						if m.Flags == FlagError {
							t.Errorf("writer %d: loadSerial of the conflicting serial %s: %s", w, committedSerial, m.Args)
							return
						}
						b, _ := m.Args.AsBytes()
						n, err := strconv.Atoi(string(b))
						if err != nil {
							t.Errorf("writer %d: counter holds %q", w, b)
							return
						}
						c.oneWay("storea", oidValue(counter), tidValue(committedSerial), pyval.Bytes(strconv.AppendInt(nil, int64(n+1), 10)), pyval.Int(txn))
					}
				}
				tid := c.finish(txn)
				ownSerial = tid
				mu.Lock()
				committed[tid] = true
				if inc {
					increments++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var last zodb.Tid
	for len(committed) > 0 {
		m := reader.expect("invalidateTransaction")
		tid := mustTid(t, m.Args.Items()[0])
		if tid <= last {
			t.Fatalf("invalidation %s after %s", tid, last)
		}
		last = tid
		if !committed[tid] {
			t.Fatalf("invalidation for %s, not a commit of this test", tid)
		}
		delete(committed, tid)
	}
	data, _, err := st.Load(context.Background(), counter)
	if err != nil || string(data) != strconv.Itoa(increments) || increments != writers*rounds/3 {
		t.Fatalf("counter %q, %v after %d increments", data, err, increments)
	}
	t.Logf("%d commits, %d fsyncs", writers*rounds, st.Fsyncs()-fsyncsBefore)
	reader.noOneWay(50 * time.Millisecond)
}

// heldStorage holds every Finish, after the storage's own Finish, until
// the channel in hold (if any) closes: the state, as the server sees it,
// of a commit in the storage but waiting for its fsync (or, on a primary
// in sync mode, for its secondaries), not yet published.
type heldStorage struct {
	*fs.FileStorage
	hold atomic.Pointer[chan struct{}]
}

func (s *heldStorage) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	t, err := s.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return &heldTxn{Txn: t, s: s}, nil
}

type heldTxn struct {
	zodb.Txn
	s *heldStorage
}

func (t *heldTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	tid, err := t.Txn.Finish(ctx)
	if h := t.s.hold.Load(); h != nil {
		<-*h
	}
	return tid, err
}

// heldFixture is a server over a FileStorage whose Finishes can be held
// (heldStorage), with a writer c1 and a second client c2, both registered.
type heldFixture struct {
	st     *fs.FileStorage
	hs     *heldStorage
	srv    *Server
	c1, c2 *testClient
}

func newHeldFixture(t *testing.T, opts Options, c2ReadOnly bool) *heldFixture {
	t.Helper()
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &heldFixture{st: st, hs: &heldStorage{FileStorage: st}}
	var addr net.Addr
	f.srv, addr = serveTest(t, f.hs, opts)
	f.c1, f.c2 = dialTest(t, addr, nil), dialTest(t, addr, nil)
	f.c1.register(false)
	f.c2.register(c2ReadOnly)
	return f
}

// newObject has c1 create an object as transaction txn and c2 receive its
// invalidation; it returns the oid and its serial.
func (f *heldFixture) newObject(txn int64) (zodb.Oid, zodb.Tid) {
	oid := f.c1.newOid()
	t0 := f.c1.commit(txn, store{oid, 0, []byte("v0")})
	f.c2.expect("invalidateTransaction")
	return oid, t0
}

// commitHeld has c1 commit T1 over oid (serial t0) as transaction txn,
// with its Finish held after the storage's own, and returns once T1 is in
// the storage: the channel of c1's tpc_finish reply and the function that
// releases T1 (also run at cleanup, before the server's, so that a failure
// never leaves T1 held).
func (f *heldFixture) commitHeld(t *testing.T, oid zodb.Oid, t0 zodb.Tid, txn int64) (fin <-chan *Message, unhold func()) {
	t.Helper()
	release := make(chan struct{})
	f.hs.hold.Store(&release)
	unhold = sync.OnceFunc(func() { f.hs.hold.Store(nil); close(release) })
	t.Cleanup(unhold)
	f.c1.begin(txn)
	f.c1.oneWay("storea", oidValue(oid), tidValue(t0), pyval.Bytes([]byte("v1")), pyval.Int(txn))
	if v := f.c1.call("vote", pyval.Int(txn)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	fin = f.c1.start("tpc_finish", pyval.Int(txn))
	waitUntil(t, "T1 never reached the storage", func() bool { return f.st.LastTransaction() != t0 })
	return fin, unhold
}

// waitUntil polls cond until it holds, failing with what after testTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// A vote that fails on a conflict with a commit not yet published (a
// stale checkCurrentSerialInTransaction, a deleteObject on an old serial)
// answers only once that commit is published, so that the client has its
// invalidation before it retries; otherwise it retries on the same stale
// state and fails again for as long as the commit waits.
func TestConflictErrorsWaitForTheCommitTheyName(t *testing.T) {
	f := newHeldFixture(t, Options{}, false)
	c1, c2 := f.c1, f.c2
	for i, c := range []struct {
		method, exc string
	}{
		{"checkCurrentSerialInTransaction", excReadConflict},
		{"deleteObject", excConflict},
	} {
		oid, t0 := f.newObject(int64(10*i + 1))
		// c1 commits T1 over oid; its Finish is held.
		fin, unhold := f.commitHeld(t, oid, t0, int64(10*i+2))

		// c2, on the state before T1, votes and conflicts with T1.
		txn := int64(10*i + 3)
		c2.begin(txn)
		c2.oneWay(c.method, oidValue(oid), tidValue(t0), pyval.Int(txn))
		vote := c2.start("vote", pyval.Int(txn))
		select {
		case m := <-vote:
			t.Fatalf("%s: vote answered %s while T1 is unpublished", c.method, m.Args)
		case <-time.After(100 * time.Millisecond):
		}
		unhold()
		m := c2.wait(vote, "vote")
		if q, _ := m.Args.Items()[0].AsText(); m.Flags != FlagError || q != c.exc {
			t.Fatalf("%s: vote answered %s, want %s", c.method, m.Args, c.exc)
		}
		inv := c2.expect("invalidateTransaction")
		t1 := mustTid(t, inv.Args.Items()[0])
		c2.mu.Lock()
		for _, e := range c2.events {
			if e == m {
				t.Errorf("%s: the vote's error came before T1's invalidation", c.method)
			}
			if e == inv {
				break
			}
		}
		c2.mu.Unlock()
		c1.expect("info")
		if got := mustTid(t, c1.wait(fin, "tpc_finish").Args); got != t1 {
			t.Fatalf("T1 is %s, c2 was told of %s", got, t1)
		}
	}
}

// While a vote waits for a conflicting commit's publication, a
// record_iternext on the same session (served under the publication lock)
// is answered, then the vote and the commit: no wait cycle between the
// publication, the vote and the record_iternext. Since the vote waits
// with its session's transaction lock released (commit.go), this holds by
// construction; the test guards the exchange as a client sees it, should
// either side change.
func TestVoteWaitingForPublicationDoesNotBlockRecordIternext(t *testing.T) {
	f := newHeldFixture(t, Options{}, false)
	c1, c2 := f.c1, f.c2
	for i, method := range []string{"storea", "checkCurrentSerialInTransaction"} {
		oid, t0 := f.newObject(int64(10*i + 1))
		fin, unhold := f.commitHeld(t, oid, t0, int64(10*i+2))

		txn := int64(10*i + 3)
		c2.begin(txn)
		if method == "storea" {
			c2.oneWay(method, oidValue(oid), tidValue(t0), pyval.Bytes([]byte("v2")), pyval.Int(txn))
		} else {
			c2.oneWay(method, oidValue(oid), tidValue(t0), pyval.Int(txn))
		}
		vote := c2.start("vote", pyval.Int(txn))
		time.Sleep(50 * time.Millisecond) // the vote waits for T1's publication
		iter := c2.start("record_iternext", pyval.None())
		time.Sleep(50 * time.Millisecond)
		unhold()
		for _, w := range []struct {
			ch   <-chan *Message
			what string
		}{{vote, "vote"}, {iter, "record_iternext"}, {fin, "c1's tpc_finish"}} {
			select {
			case <-w.ch:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %s not answered: deadlock", method, w.what)
			}
		}
		c1.expect("info")
		if method == "storea" {
			c2.call("tpc_abort", pyval.Int(txn))
		}
	}
}

// voteConflicting has c2 store over oid's old serial t0 as transaction
// txn while T1 is held, and returns once its vote has found the conflict
// and waits for T1's publication.
func (f *heldFixture) voteConflicting(t *testing.T, oid zodb.Oid, t0 zodb.Tid, txn int64) <-chan *Message {
	t.Helper()
	f.c2.begin(txn)
	f.c2.oneWay("storea", oidValue(oid), tidValue(t0), pyval.Bytes([]byte("v2")), pyval.Int(txn))
	vote := f.c2.start("vote", pyval.Int(txn))
	waitUntil(t, "the vote never found the conflict", func() bool { return f.srv.Stats().Conflicts > 0 })
	return vote
}

// While a vote that returned conflicts waits for the conflicting commit to
// be published, the connection's other requests are served, tpc_abort
// (which takes the session's lock) included.
func TestVoteWaitingForPublicationLetsAbortThrough(t *testing.T) {
	f := newHeldFixture(t, Options{}, false)
	c1, c2 := f.c1, f.c2
	oid, t0 := f.newObject(1)
	fin, unhold := f.commitHeld(t, oid, t0, 2)

	// c2 stores over the old serial: its vote finds the conflict and waits.
	vote := f.voteConflicting(t, oid, t0, 3)
	abort := c2.start("tpc_abort", pyval.Int(3))
	select {
	case m := <-abort:
		if m.Flags == FlagError {
			t.Fatalf("tpc_abort: %s", m.Args)
		}
	case <-vote:
		t.Fatal("the vote was answered while T1 is unpublished")
	case <-time.After(5 * time.Second):
		t.Fatal("tpc_abort was not answered while the vote waits")
	}
	unhold()
	c2.wait(vote, "vote")
	c1.expect("info")
	c1.wait(fin, "tpc_finish")
	// The lock is free again: c2 commits over T1.
	c2.skipInvalidations = true
	t1 := f.st.LastTransaction()
	if tid := c2.commit(4, store{oid, t1, []byte("v3")}); tid <= t1 {
		t.Fatalf("commit after the abort: %s", tid)
	}
}

// The TransactionTimeout clock does not run while a vote waits for a
// conflicting commit's publication: that wait is the server's, and a
// client resolving conflicts is not cut for it.
func TestVoteWaitingForPublicationPausesTheTimeout(t *testing.T) {
	f := newHeldFixture(t, Options{TransactionTimeout: 150 * time.Millisecond}, false)
	c1, c2 := f.c1, f.c2
	oid, t0 := f.newObject(1)
	fin, unhold := f.commitHeld(t, oid, t0, 2)
	vote := f.voteConflicting(t, oid, t0, 3)
	time.Sleep(400 * time.Millisecond) // well past the timeout
	unhold()
	m := c2.wait(vote, "vote")
	if m.Flags == FlagError || m.Args.Len() != 1 {
		t.Fatalf("vote: %s", m.Args)
	}
	c1.expect("info")
	t1 := mustTid(t, c1.wait(fin, "tpc_finish").Args)
	// c2 resolves at once and commits: it still holds the lock and was
	// not disconnected.
	c2.oneWay("storea", oidValue(oid), tidValue(t1), pyval.Bytes([]byte("v1+v2")), pyval.Int(3))
	if v := c2.call("vote", pyval.Int(3)); v.Len() != 0 {
		t.Fatalf("second vote: %s", v)
	}
	c2.skipInvalidations = true
	if tid := c2.finish(3); tid <= t1 {
		t.Fatalf("c2 committed %s after %s", tid, t1)
	}
}

// A transaction in the storage but not yet published (waiting for its
// fsync, or for secondaries) is invisible to every request, not only to
// loads: history, loadSerial, the undo log and iterators show it only
// after its invalidation has been queued.
func TestUnpublishedCommitIsInvisible(t *testing.T) {
	f := newHeldFixture(t, Options{}, true)
	c1, c2 := f.c1, f.c2
	oid, t0 := f.newObject(1)
	fin, unhold := f.commitHeld(t, oid, t0, 2)
	t1 := f.st.LastTransaction()

	// newest returns the newest tid history, the undo log and an iterator
	// show, and whether loadSerial finds T1.
	newest := func() (hist, undo, iter zodb.Tid, serialFound bool) {
		h := c2.call("history", oidValue(oid), pyval.Int(10))
		tid, _ := h.Items()[0].Lookup("tid")
		hist = mustTid(t, tid)
		u := c2.call("undoLog", pyval.Int(0), pyval.Int(-20))
		id, _ := u.Items()[0].Lookup("id")
		b, _ := base64.StdEncoding.DecodeString(string(mustBytes(t, id)))
		undo = zodb.Tid(binary.BigEndian.Uint64(b))
		iid := c2.call("iterator_start", pyval.None(), pyval.None())
		for {
			txn := c2.call("iterator_next", iid)
			if txn.IsNone() {
				break
			}
			iter = mustTid(t, txn.Items()[0])
		}
		m := c2.wait(c2.start("loadSerial", oidValue(oid), tidValue(t1)), "loadSerial")
		return hist, undo, iter, m.Flags != FlagError
	}
	if h, u, i, found := newest(); h != t0 || u != t0 || i != t0 || found {
		t.Fatalf("while T1 is unpublished: history %s, undoLog %s, iterator %s, loadSerial found it: %v (T0 %s)", h, u, i, found, t0)
	}
	unhold()
	c1.expect("info")
	c1.wait(fin, "tpc_finish")
	if m := c2.expect("invalidateTransaction"); mustTid(t, m.Args.Items()[0]) != t1 {
		t.Fatalf("invalidation %s", m.Args)
	}
	if h, u, i, found := newest(); h != t1 || u != t1 || i != t1 || !found {
		t.Fatalf("once T1 is published: history %s, undoLog %s, iterator %s, loadSerial found it: %v (T1 %s)", h, u, i, found, t1)
	}
}
