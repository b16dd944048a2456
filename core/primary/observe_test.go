package primary

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Every Finish through the primary reaches the commit observer with its
// tid and duration.
func TestObserveCommits(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(st, Options{})
	defer p.Close()
	var mu sync.Mutex
	var tids []zodb.Tid
	p.ObserveCommits(func(tid zodb.Tid, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil || took <= 0 {
			t.Errorf("observed %s %v %v", tid, took, err)
		}
		tids = append(tids, tid)
	})
	ctx := context.Background()
	for range 3 {
		txn, err := p.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oid, _ := p.NewOid(ctx)
		if err := txn.Store(oid, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tids) != 3 || tids[2] != p.LastTransaction() {
		t.Fatalf("observed %v, last %s", tids, p.LastTransaction())
	}
}
