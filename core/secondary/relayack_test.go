package secondary_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// committedThenFails is a storage whose transaction number failAt is
// committed (and fsynced) locally, then Finish fails: a relay whose wait
// for its own secondaries failed.
type committedThenFails struct {
	*fs.FileStorage
	failAt int
	begun  atomic.Int32
}

func (r *committedThenFails) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := r.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	if int(r.begun.Add(1)) == r.failAt {
		return &finishFailsAfterCommit{Txn: txn}, nil
	}
	return txn, nil
}

type finishFailsAfterCommit struct{ zodb.Txn }

func (t *finishFailsAfterCommit) Finish(ctx context.Context) (zodb.Tid, error) {
	tid, err := t.Txn.Finish(ctx)
	if err != nil {
		return tid, err
	}
	return tid, errors.New("simulated: the relay's own secondaries did not acknowledge")
}

// A transaction durable on the secondary is acknowledged even when its
// Finish then failed (a relay): the primary's sync commit waiting for it
// is not left to time out.
func TestCommittedTransactionWhoseFinishFailedIsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := startPrimaryWith(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0",
		primary.Options{Durability: primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: 5 * time.Second}})
	st := &committedThenFails{FileStorage: openFS(t, filepath.Join(dir, "s.fs")), failAt: 3}
	// A slow reconnection: only the acknowledgement on the connection
	// that applied the transaction can satisfy the wait in time.
	startSecondaryOn(t, st, p.addr, secondary.Options{Protocol: secondary.ProtoNative, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second})
	w := newWorkload(t, p)
	for range 3 {
		w.create(1) // fails the test if the sync commit fails
	}
}
