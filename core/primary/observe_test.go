package primary

import (
	"context"
	"errors"
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

// voteFails is a storage whose transactions fail their vote with err.
type voteFails struct {
	Storage
	err error
}

func (s voteFails) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	t, err := s.Storage.Begin(ctx, meta, opts)
	return failingVote{t, s.err}, err
}

type failingVote struct {
	zodb.Txn
	err error
}

func (t failingVote) Vote(context.Context) error { return t.err }

// A full disk fails commits at the vote: such a failure reaches the
// commit observer (zrs_commits_total{result="error"}); a conflict, which
// the client resolves or retries, does not.
func TestObserveFailedVotes(t *testing.T) {
	for _, c := range []struct {
		err     error
		counted bool
	}{
		{errors.New("write Data.fs: no space left on device"), true},
		{&zodb.ConflictError{Oid: 1}, false},
		{&zodb.NotFoundError{Oid: 7}, false}, // checkCurrentSerialInTransaction of a missing object
	} {
		st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := New(voteFails{st, c.err}, Options{})
		var observed []error
		p.ObserveCommits(func(tid zodb.Tid, _ time.Duration, err error) {
			if tid != 0 {
				t.Errorf("a failed vote observed with tid %s", tid)
			}
			observed = append(observed, err)
		})
		txn, err := p.Begin(context.Background(), zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(context.Background()); err != c.err {
			t.Fatalf("vote: %v", err)
		}
		txn.Abort()
		if got := len(observed) == 1 && observed[0] == c.err; got != c.counted || len(observed) > 1 {
			t.Errorf("vote failing with %v: observed %v, want counted %v", c.err, observed, c.counted)
		}
		p.Close()
	}
}
