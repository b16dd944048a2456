package secondary_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// A transaction durable on the secondary is acknowledged even when its
// Finish then failed (a relay): the primary's sync commit waiting for it
// is not left to time out.
func TestCommittedTransactionWhoseFinishFailedIsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := startPrimaryWith(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0",
		primary.Options{Durability: primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: 5 * time.Second}})
	// The third Finish commits, then fails (a relay).
	st := &slowDisk{FileStorage: openFS(t, filepath.Join(dir, "s.fs")), failAt: 3, committed: make(map[zodb.Tid]struct{})}
	// A slow reconnection: only the acknowledgement on the connection
	// that applied the transaction can satisfy the wait in time.
	startSecondaryOn(t, st, p.addr, secondary.Options{Protocol: secondary.ProtoNative, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second})
	w := newWorkload(t, p)
	for range 3 {
		w.create(1) // fails the test if the sync commit fails
	}
}
