package zeo

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// gatedStorage's transactions finish in two parts (zodb.SplitFinisher),
// as a primary's in sync durability: the wait after the local commit
// returns when the test sends a token on release.
type gatedStorage struct {
	*fs.FileStorage
	waiting chan struct{} // a wait began
	release chan struct{} // one token lets one wait return
}

func (g *gatedStorage) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	t, err := g.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return &gatedTxn{Txn: t, g: g}, nil
}

type gatedTxn struct {
	zodb.Txn
	g *gatedStorage
}

func (t *gatedTxn) FinishDurable(ctx context.Context) (zodb.Tid, func(context.Context) error, error) {
	tid, err := t.Txn.Finish(ctx)
	return tid, func(ctx context.Context) error {
		t.g.waiting <- struct{}{}
		select {
		case <-t.g.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, err
}

// newGated is a gatedStorage over a new FileStorage, its channels
// buffered for n waits.
func newGated(t *testing.T, n int) *gatedStorage {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &gatedStorage{FileStorage: st, waiting: make(chan struct{}, n), release: make(chan struct{}, n)}
}

// shutdownAsync runs srv.Shutdown (bounded by testTimeout) and returns
// where its result arrives.
func shutdownAsync(srv *Server) <-chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	return shut
}

// answeredBeforeClose fails unless the reply on ch arrives, without an
// error, before the connection closes (or with it); why says what a lost
// reply means.
func answeredBeforeClose(t *testing.T, c *testClient, ch <-chan *Message, what, why string) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Flags == FlagError {
			t.Fatalf("%s: %s", what, m.Args)
		}
	case <-c.closed:
		select {
		case m := <-ch:
			if m.Flags == FlagError {
				t.Fatalf("%s: %s", what, m.Args)
			}
		default:
			t.Fatalf("the server closed the connection before answering %s (its commit is in the storage)%s", what, why)
		}
	case <-time.After(testTimeout):
		t.Fatalf("no answer to %s", what)
	}
}

// While a finished transaction waits for its secondaries (sync
// durability), its client's other requests — the loads of an
// application's other threads sharing the connection — are answered; the
// other clients hear of the transaction only after the wait, and a server
// shutting down meanwhile sends the committer its tid before closing.
func TestFinishWaitDoesNotHoldTheConnection(t *testing.T) {
	g := newGated(t, 1)
	srv, addr := serveTest(t, g, Options{})
	c1 := dialRegistered(t, addr)
	oid := c1.newOid()
	g.release <- struct{}{}
	tid1 := c1.commit(1, store{oid, 0, []byte("one")})
	<-g.waiting

	c2 := dialRegistered(t, addr)
	c1.voted(2, store{oid, tid1, []byte("two")})
	finished := c1.start("tpc_finish", pyval.Int(2))
	select {
	case <-g.waiting:
	case <-time.After(testTimeout):
		t.Fatal("tpc_finish did not reach the wait")
	}
	select {
	case m := <-c1.start("loadBefore", oidValue(oid), tidValue(zodb.MaxTid)):
		if data := mustBytes(t, m.Args.Items()[0]); string(data) != "one" {
			t.Fatalf("load while the commit waits: %q, want the published revision", data)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a load on the committing connection waited for the commit's replication")
	}
	c2.noOneWay(50 * time.Millisecond)

	g.release <- struct{}{}
	c1.expect("info")
	m := c1.wait(finished, "tpc_finish")
	if m.Flags == FlagError {
		t.Fatalf("tpc_finish: %s", m.Args)
	}
	tid2 := mustTid(t, m.Args)
	inv := c2.expect("invalidateTransaction")
	if got := mustTid(t, inv.Args.Items()[0]); got != tid2 {
		t.Fatalf("invalidation for %s, want %s", got, tid2)
	}

	// A shutdown while a commit waits: the committer gets its tid.
	c1.voted(3, store{oid, tid2, []byte("three")})
	finished = c1.start("tpc_finish", pyval.Int(3))
	<-g.waiting
	shut := shutdownAsync(srv)
	time.Sleep(50 * time.Millisecond) // Shutdown looks at the sessions
	g.release <- struct{}{}
	c1.expect("info")
	if m := c1.wait(finished, "tpc_finish"); m.Flags == FlagError || mustTid(t, m.Args) <= tid2 {
		t.Fatalf("tpc_finish during a shutdown: %s", m.Args)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// With sync durability and no secondary, a commit is published to the
// other clients only once the sync timeout has passed, also when the
// committing client disconnects during the wait: the wait does not end
// with the client's connection.
func TestDisconnectDuringSyncWaitDoesNotPublishEarly(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	const syncTimeout = 5 * time.Second
	p := primary.New(st, primary.Options{Durability: primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: syncTimeout}})
	defer p.Close()
	_, addr := serveTest(t, p, Options{})
	c1 := dialRegistered(t, addr)
	c2 := dialRegistered(t, addr)
	oid := c1.newOid()
	c1.voted(1, store{oid, 0, []byte("one")})
	finishing := time.Now()
	c1.start("tpc_finish", pyval.Int(1))
	time.Sleep(300 * time.Millisecond) // the commit is in the storage and waits for acks
	t0 := time.Now()
	c1.conn.Close() // the committing client goes away (killed, its own timeout)
	select {
	case m := <-c2.oneways:
		t.Fatalf("%s reached another client %v after the committer disconnected, %v before the sync timeout: "+
			"a commit no secondary acknowledged is visible", m.Name, time.Since(t0).Round(time.Millisecond), syncTimeout-time.Since(t0))
	case <-time.After(2 * time.Second):
	}
	select {
	case m := <-c2.oneways:
		if m.Name != "invalidateTransaction" {
			t.Fatalf("%s reached another client, want the commit's invalidation", m.Name)
		}
		if took := time.Since(finishing); took < syncTimeout {
			t.Fatalf("the commit was published %v after its tpc_finish, before the sync timeout (%v)", took, syncTimeout)
		}
	case <-time.After(syncTimeout + testTimeout):
		t.Fatal("the commit was never published to the other clients after its committer disconnected")
	}
}

// panicGated is gatedStorage (transactions that finish in two parts) whose
// loads panic on demand, as a bug in zrs would; loads take the generic path.
type panicGated struct {
	Storage
	g          *gatedStorage
	loadPanics atomic.Bool
}

func (p *panicGated) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	return p.g.Begin(ctx, meta, opts)
}

func (p *panicGated) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	if p.loadPanics.Load() {
		panic("injected fault in LoadBefore")
	}
	return p.Storage.LoadBefore(ctx, oid, before)
}

// A session's reader serves requests while its commit waits for its
// secondaries; an internal error in one of them is contained as any
// other (the server goes on), and the commit is published when its wait
// ends, although its connection is gone.
func TestPanicDuringSyncWaitIsContained(t *testing.T) {
	g := newGated(t, 1)
	ps := &panicGated{Storage: g.FileStorage, g: g}
	logs := &testutil.SyncBuffer{}
	fatal := make(chan error, 4)
	srv := NewServer(ps, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Fatal: func(err error) { fatal <- err }})
	srv.checkWithin = 3 * time.Second
	addr, err := srv.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c1 := dialRegistered(t, addr)
	oid := c1.newOid()
	c1.voted(1, store{oid, 0, []byte("one")})
	c2 := dialRegistered(t, addr)
	c1.start("tpc_finish", pyval.Int(1))
	<-g.waiting
	ps.loadPanics.Store(true)
	c1.start("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
	select {
	case err := <-fatal:
		t.Fatalf("a contained panic in a load during a commit's sync wait was fatal to the server: %v", err)
	case <-c1.closed:
	case <-time.After(testTimeout):
		t.Fatal("the connection with the internal error stays open")
	}
	select {
	case err := <-fatal:
		t.Fatalf("a contained panic in a load during a commit's sync wait was fatal to the server: %v", err)
	case <-time.After(time.Second):
	}
	ps.loadPanics.Store(false)
	g.release <- struct{}{}
	c2.expect("invalidateTransaction")
}

// A client may begin a second transaction while its first waits for its
// secondaries (ClientStorage does not, a ZEO client may): a Shutdown then
// closes the connection only once both commits are answered.
func TestShutdownAnswersEveryPipelinedFinish(t *testing.T) {
	g := newGated(t, 2)
	srv, addr := serveTest(t, g, Options{})
	c1 := dialRegistered(t, addr)
	oid1, oid2 := c1.newOid(), c1.newOid()
	c1.voted(1, store{oid1, 0, []byte("one")})
	f1 := c1.start("tpc_finish", pyval.Int(1))
	<-g.waiting
	c1.voted(2, store{oid2, 0, []byte("two")})
	f2 := c1.start("tpc_finish", pyval.Int(2))
	<-g.waiting
	shut := shutdownAsync(srv)
	time.Sleep(50 * time.Millisecond)
	g.release <- struct{}{} // the first commit's wait ends
	if m := c1.wait(f1, "tpc_finish 1"); m.Flags == FlagError {
		t.Fatalf("tpc_finish 1: %s", m.Args)
	}
	time.Sleep(200 * time.Millisecond)
	g.release <- struct{}{} // then the second's
	answeredBeforeClose(t, c1, f2, "tpc_finish 2", "")
	<-shut
}

// A client whose first commit waits for its secondaries begins a second
// transaction (one-way tpc_begin) while the server drains for Shutdown:
// the tpc_begin is refused, which ends the connection, but only after the
// first commit, which is in the storage, is answered.
func TestShutdownRefusedBeginAnswersTheFinishingCommit(t *testing.T) {
	g := newGated(t, 1)
	srv, addr := serveTest(t, g, Options{})
	c1 := dialRegistered(t, addr)
	oid := c1.newOid()
	c1.voted(1, store{oid, 0, []byte("one")})
	f1 := c1.start("tpc_finish", pyval.Int(1))
	<-g.waiting
	shut := shutdownAsync(srv)
	time.Sleep(100 * time.Millisecond) // Shutdown is draining
	c1.begin(2)                        // another thread of the application
	time.Sleep(200 * time.Millisecond)
	g.release <- struct{}{} // the first commit's wait ends
	answeredBeforeClose(t, c1, f1, "tpc_finish 1", ": a refused tpc_begin during Shutdown ended the session while a commit was finishing")
	<-shut
}
