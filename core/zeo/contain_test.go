package zeo

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// faultyStorage panics where a test asks, as a bug in zrs would. It
// embeds the Storage interface, not the FileStorage, so the server sees
// none of the FileStorage's optional fast paths: loads take the generic
// path under the publication lock.
type faultyStorage struct {
	Storage
	loadPanics  atomic.Bool // LoadBefore panics
	storePanics atomic.Bool // a transaction's Store panics
	lenPanics   atomic.Bool // Len panics (tpc_finish asks it after the commit)
	wedge       atomic.Bool // the panic leaves mu, the storage's state lock, held
	mu          sync.Mutex

	storeDelay atomic.Int64 // nanoseconds each Store takes
	stores     atomic.Int64 // Store calls made
}

func (f *faultyStorage) Len() int {
	if f.lenPanics.Load() {
		f.fault("Len")
	}
	return f.Storage.Len()
}

func (f *faultyStorage) fault(where string) {
	if f.wedge.Load() {
		f.mu.Lock() // never unlocked, as a panic inside a critical section leaves it
	}
	panic("injected fault in " + where)
}

func (f *faultyStorage) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	if f.loadPanics.Load() {
		f.fault("LoadBefore")
	}
	return f.Storage.LoadBefore(ctx, oid, before)
}

func (f *faultyStorage) LastTransaction() zodb.Tid {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Storage.LastTransaction()
}

func (f *faultyStorage) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	t, err := f.Storage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return &faultyTxn{Txn: t, f: f}, nil
}

type faultyTxn struct {
	zodb.Txn
	f *faultyStorage
}

func (t *faultyTxn) Store(oid zodb.Oid, serial zodb.Tid, data []byte) error {
	if t.f.storePanics.Load() {
		t.f.fault("Store")
	}
	t.f.stores.Add(1)
	time.Sleep(time.Duration(t.f.storeDelay.Load()))
	return t.Txn.Store(oid, serial, data)
}

// faultyServer serves a faultyStorage over a fresh FileStorage. Fatal
// calls arrive on the returned channel; the check after an internal error
// waits at most 3 s per step.
func faultyServer(t *testing.T, msgpack bool) (*faultyStorage, net.Addr, *testutil.SyncBuffer, <-chan error, *Server) {
	t.Helper()
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyStorage{Storage: st}
	t.Cleanup(func() { st.Close() })
	logs := &testutil.SyncBuffer{}
	fatal := make(chan error, 4)
	srv := NewServer(f, Options{
		Msgpack: msgpack,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Fatal:   func(err error) { fatal <- err },
	})
	srv.checkWithin = 3 * time.Second
	addr, err := srv.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !within(testTimeout, func() { srv.Close() }) {
			t.Error("the server did not close: a session never ended")
		}
	})
	return f, addr, logs, fatal, srv
}

// waitContained waits until the server says it checked its state after
// an internal error and serves on; a Fatal call fails the test.
func waitContained(t *testing.T, logs *testutil.SyncBuffer, fatal <-chan error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !strings.Contains(logs.String(), "serving on") {
		select {
		case err := <-fatal:
			t.Fatalf("Fatal called: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never finished its check:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits until the server has closed c's connection.
func waitClosed(t *testing.T, c *testClient) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(testTimeout):
		t.Fatal("the server kept the connection of the client whose request failed")
	}
}

// A panic serving a load ends that client's connection, not the server:
// the publication lock the load held is released, so other clients
// commit, load and see each other's commits.
func TestInternalErrorInLoadEndsOnlyThatConnection(t *testing.T) {
	codecs(t, func(t *testing.T, msgpack bool) {
		f, addr, logs, fatal, srv := faultyServer(t, msgpack)
		a, b := dialRegistered(t, addr), dialRegistered(t, addr)
		b.skipInvalidations = true
		oid := b.newOid()
		tid1 := b.commit(1, store{oid, 0, []byte("one")})
		a.expect("invalidateTransaction")

		f.loadPanics.Store(true)
		a.start("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
		waitClosed(t, a)
		f.loadPanics.Store(false)
		waitContained(t, logs, fatal)
		log := logs.String()
		for _, want := range []string{"internal error while serving a request", "injected fault in LoadBefore", "contain_test.go"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		if n := srv.Stats().InternalErrors; n != 1 {
			t.Errorf("InternalErrors = %d, want 1", n)
		}

		// The others go on: a commit publishes (it takes the
		// publication lock's write side), loads answer.
		c := dialRegistered(t, addr)
		tid2 := b.commit(2, store{oid, tid1, []byte("two")})
		c.expect("invalidateTransaction")
		got := c.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid)).Items()
		if data, _ := got[0].AsBytes(); string(data) != "two" || mustTid(t, got[1]) != tid2 {
			t.Fatalf("loadBefore after the internal error: %s", pyval.Tuple(got...))
		}
	})
}

// A panic in a vote releases the commit lock the vote took: the next
// client's commit goes through.
func TestInternalErrorInVoteReleasesCommitLock(t *testing.T) {
	f, addr, logs, fatal, _ := faultyServer(t, false)
	a, b := dialRegistered(t, addr), dialRegistered(t, addr)
	b.skipInvalidations = true
	oid := a.newOid()

	f.storePanics.Store(true)
	a.begin(1)
	a.oneWay("storea", oidValue(oid), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(1))
	a.start("vote", pyval.Int(1))
	waitClosed(t, a)
	f.storePanics.Store(false)
	waitContained(t, logs, fatal)
	if !strings.Contains(logs.String(), "internal error while voting") {
		t.Errorf("log lacks the vote's internal error:\n%s", logs)
	}

	done := make(chan zodb.Tid, 1)
	go func() { done <- b.commit(2, store{oid, 0, []byte("b")}) }()
	select {
	case <-done:
	case err := <-fatal:
		t.Fatalf("Fatal called: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("a commit after the failed vote never finished: the commit lock was kept")
	}
}

// A panic that leaves the storage's own lock held cannot be contained:
// the check finds the storage does not answer and calls Fatal, naming the
// internal error.
func TestInternalErrorWedgingTheStorageIsFatal(t *testing.T) {
	f, addr, _, fatal, _ := faultyServer(t, false)
	a := dialRegistered(t, addr)
	oid := a.newOid()
	f.wedge.Store(true)
	f.loadPanics.Store(true)
	a.start("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
	waitClosed(t, a)
	select {
	case err := <-fatal:
		for _, want := range []string{"storage did not answer", "injected fault in LoadBefore"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Fatal's error %q lacks %q", err, want)
			}
		}
	case <-time.After(testTimeout):
		t.Fatal("the server carried on over a storage that no longer answers")
	}
	// Unwedge, so that the test's clean-up can close the server.
	f.wedge.Store(false)
	f.mu.Unlock()
}

// A panic in tpc_finish after the storage committed, before the other
// clients were sent their invalidations, cannot be contained: their
// caches would stay stale. The check calls Fatal naming the transaction.
func TestInternalErrorBeforePublishingIsFatal(t *testing.T) {
	f, addr, _, fatal, _ := faultyServer(t, false)
	a := dialRegistered(t, addr)
	dialRegistered(t, addr) // another client, owed the invalidation
	oid := a.newOid()
	f.lenPanics.Store(true)
	a.begin(1)
	a.oneWay("storea", oidValue(oid), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(1))
	a.call("vote", pyval.Int(1))
	a.start("tpc_finish", pyval.Int(1))
	waitClosed(t, a)
	select {
	case err := <-fatal:
		if !strings.Contains(err.Error(), "committed but not published") {
			t.Errorf("Fatal's error %q does not say the commit was not published", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the server carried on after losing a commit's invalidations")
	}
	f.lenPanics.Store(false)
}

// A vote that finds its transaction aborted while it kept the commit lock
// from an earlier vote (which returned conflicts) does not release the
// lock a second time when the abort already did.
func TestVoteAfterAbortReleasesTheLockOnce(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{})
	client, server := net.Pipe()
	defer client.Close()
	ss := newSession(srv, server)
	tx := &transaction{ss: ss, id: pyval.Int(1), state: stVoting}
	ctx := context.Background()
	if err := srv.acquireCommit(ctx, ss); err != nil {
		t.Fatal(err)
	}
	tx.locked = true // kept from a vote that returned conflicts
	tx.fail()        // aborted (a disconnect): releases it
	done := make(chan error, 1)
	go func() {
		_, _, err := tx.vote(ctx, true)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the vote of an aborted transaction succeeded")
		}
	case <-time.After(testTimeout):
		t.Fatal("the vote blocked releasing a commit lock it no longer held")
	}
	// Exactly one token is free: one commit can take it, a second cannot.
	if err := srv.acquireCommit(ctx, ss); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := srv.acquireCommit(short, ss); err == nil {
		t.Fatal("the commit lock was taken twice")
	}
	srv.releaseCommit()
}

// A client that goes away while its large transaction is replayed at vote
// stops the replay: the commit lock is not held until every recorded
// store has gone into the storage.
func TestVoteStopsReplayingWhenTheClientLeaves(t *testing.T) {
	f, addr, _, _, _ := faultyServer(t, false)
	a, b := dialRegistered(t, addr), dialRegistered(t, addr)
	b.skipInvalidations = true
	const n = 200
	f.storeDelay.Store(int64(10 * time.Millisecond))
	a.begin(1)
	for range n {
		a.oneWay("storea", oidValue(a.newOid()), tidValue(0), pyval.Bytes([]byte("a")), pyval.Int(1))
	}
	a.start("vote", pyval.Int(1))
	deadline := time.Now().Add(testTimeout)
	for f.stores.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the vote never started replaying")
		}
		time.Sleep(time.Millisecond)
	}
	a.conn.Close()
	b.commit(2, store{b.newOid(), 0, []byte("b")}) // waits for the lock
	f.storeDelay.Store(0)
	if got := f.stores.Load(); got >= n {
		t.Errorf("all %d stores were replayed for a client that had left", got)
	}
}
