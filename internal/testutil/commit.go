package testutil

import (
	"context"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

// CommitNew commits one transaction to st that stores data under a new
// oid, begun with meta and opts, and returns its tid; any failure fails
// the test.
func CommitNew(t testing.TB, st zodb.Storage, meta zodb.TxnMeta, opts zodb.BeginOptions, data []byte) zodb.Tid {
	t.Helper()
	_, tid := CommitNewObject(t, st, meta, opts, data)
	return tid
}

// CommitNewObject is CommitNew returning the new oid too.
func CommitNewObject(t testing.TB, st zodb.Storage, meta zodb.TxnMeta, opts zodb.BeginOptions, data []byte) (zodb.Oid, zodb.Tid) {
	t.Helper()
	ctx := context.Background()
	txn, err := st.Begin(ctx, meta, opts)
	if err != nil {
		t.Fatal(err)
	}
	oid, err := st.NewOid(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(oid, 0, data); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return oid, tid
}
