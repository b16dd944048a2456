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
// tid and the time its Finish took: at least the storage's own Finish,
// at most the caller's whole call.
func TestObserveCommits(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const storageFinish = 20 * time.Millisecond
	p := New(slowFinish{st, storageFinish}, Options{})
	defer p.Close()
	type observed struct {
		tid  zodb.Tid
		took time.Duration
	}
	var mu sync.Mutex
	var got []observed
	p.ObserveCommits(func(tid zodb.Tid, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("observed %s with error %v", tid, err)
		}
		got = append(got, observed{tid, took})
	})
	ctx := context.Background()
	var want []zodb.Tid
	var calls []time.Duration
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
		start := time.Now()
		tid, err := txn.Finish(ctx)
		calls = append(calls, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, tid)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("observed %v; want one per commit: %v", got, want)
	}
	for i, o := range got {
		if o.tid != want[i] || o.took < storageFinish || o.took > calls[i] {
			t.Errorf("commit %d: observed %s taking %v; want %s taking between the storage's %v and the call's %v", i, o.tid, o.took, want[i], storageFinish, calls[i])
		}
	}
}

// slowFinish is a storage whose Finish takes at least d.
type slowFinish struct {
	Storage
	d time.Duration
}

func (s slowFinish) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	t, err := s.Storage.Begin(ctx, meta, opts)
	return slowFinishTxn{t, s.d}, err
}

type slowFinishTxn struct {
	zodb.Txn
	d time.Duration
}

func (t slowFinishTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	time.Sleep(t.d)
	return t.Txn.Finish(ctx)
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
