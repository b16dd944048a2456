package zeo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
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

// While a finished transaction waits for its secondaries (sync
// durability), its client's other requests — the loads of an
// application's other threads sharing the connection — are answered; the
// other clients hear of the transaction only after the wait, and a server
// shutting down meanwhile sends the committer its tid before closing.
func TestFinishWaitDoesNotHoldTheConnection(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gatedStorage{FileStorage: st, waiting: make(chan struct{}, 1), release: make(chan struct{}, 1)}
	srv, addr := serveTest(t, g, Options{})
	c1 := dialRegistered(t, addr)
	oid := c1.newOid()
	g.release <- struct{}{}
	tid1 := c1.commit(1, store{oid, 0, []byte("one")})
	<-g.waiting

	c2 := dialRegistered(t, addr)
	c1.begin(2)
	c1.oneWay("storea", oidValue(oid), tidValue(tid1), pyval.Bytes([]byte("two")), pyval.Int(2))
	if v := c1.call("vote", pyval.Int(2)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
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
	c1.begin(3)
	c1.oneWay("storea", oidValue(oid), tidValue(tid2), pyval.Bytes([]byte("three")), pyval.Int(3))
	if v := c1.call("vote", pyval.Int(3)); v.Len() != 0 {
		t.Fatalf("vote: %s", v)
	}
	finished = c1.start("tpc_finish", pyval.Int(3))
	<-g.waiting
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
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
