package secondary_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// newOids hands out n new oids from st, as a ZEO client fetching a batch
// makes its server do, and returns the greatest.
func newOids(t *testing.T, st interface {
	NewOid(context.Context) (zodb.Oid, error)
}, n int) zodb.Oid {
	t.Helper()
	var last zodb.Oid
	for range n {
		oid, err := st.NewOid(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = oid
	}
	return last
}

// A primary's oid reservation reaches every replica, through relays, with
// no commit to carry it: a node restarted as a primary without a
// promotion hands out none of the oids its old primary's clients hold,
// and after a second failover (the promoted relay fails in turn before
// any commit; its secondary is promoted) the new primary hands out none
// of the oids the first promoted node handed out. Promotion alone (a gap
// past the greatest oid replicated) cannot tell: both promoted nodes
// would skip from the same greatest oid.
func TestOidReservationReachesEveryReplica(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	beat := primary.Options{HeartbeatInterval: 20 * time.Millisecond}
	a := startPrimaryWith(t, filepath.Join(dir, "a.fs"), "127.0.0.1:0", beat)
	newWorkload(t, a).run(5)

	// b relays a's stream to c; d replicates a directly.
	bFS := openFS(t, filepath.Join(dir, "b.fs"))
	beat.Logger = testLogger(t).With("node", "relay")
	b := primary.New(bFS, beat)
	if _, err := b.Listen(ctx, filepath.Join(dir, "b.sock")); err != nil {
		t.Fatal(err)
	}
	bServed := make(chan error, 1)
	go func() { bServed <- b.Serve(ctx) }()
	bSec := startSecondaryOn(t, b, a.addr, secondary.Options{})
	cFS := openFS(t, filepath.Join(dir, "c.fs"))
	c := startSecondaryOn(t, cFS, filepath.Join(dir, "b.sock"), secondary.Options{})
	dPath := filepath.Join(dir, "d.fs")
	dFS := openFS(t, dPath)
	d := startSecondaryOn(t, dFS, a.addr, secondary.Options{})
	waitCaughtUp(t, a, c)
	waitCaughtUp(t, a, d)

	heldA := newOids(t, a, 2*4096+10) // more than one block of reserved oids, no commit
	reservedA := a.OidReservation()
	if reservedA < heldA {
		t.Fatalf("a handed out %s, reserved up to %s only", heldA, reservedA)
	}
	for name, st := range map[string]*fs.FileStorage{"b": bFS, "c": cFS, "d": dFS} {
		waitOidsRecorded(t, name, st, reservedA)
	}

	// d restarted as a primary, without a promotion.
	d.close()
	d2 := openFS(t, dPath)
	if got := newOids(t, d2, 1); got <= heldA {
		t.Fatalf("a secondary reopened as a primary hands out %s; a's clients hold oids up to %s", got, heldA)
	}
	d2.Close()

	// a fails; b is promoted and hands out oids, with no commit.
	a.close()
	if err := bSec.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bSec.done; err != nil && !errors.Is(err, secondary.ErrPromoted) {
		t.Fatal(err)
	}
	bSec.done <- nil // for the cleanup
	heldB := newOids(t, b, 100)
	if heldB <= heldA {
		t.Fatalf("the promoted relay hands out %s; a's clients hold oids up to %s", heldB, heldA)
	}
	waitOidsRecorded(t, "c", cFS, b.OidReservation())

	// b fails; c is promoted.
	bSec.close()
	<-bServed
	if err := c.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-c.done; err != nil && !errors.Is(err, secondary.ErrPromoted) {
		t.Fatal(err)
	}
	c.done <- nil
	if got := newOids(t, c, 1); got <= heldB {
		t.Fatalf("after a second failover, the new primary hands out %s; b's clients hold oids up to %s", got, heldB)
	}
}

// A primary announces a block of new oids before it hands out the first
// of them: its reservation goes out as soon as it grows (not at the next
// idle heartbeat, a minute here), one block ahead. So a secondary already
// records every oid the primary handed out, and restarted as a primary
// right after (a crash of the first) it hands none of them out again.
func TestOidReservationIsAnnouncedAhead(t *testing.T) {
	dir := t.TempDir()
	a := startPrimaryWith(t, filepath.Join(dir, "a.fs"), "127.0.0.1:0", primary.Options{HeartbeatInterval: time.Minute})
	newWorkload(t, a).run(3)
	dPath := filepath.Join(dir, "d.fs")
	dFS := openFS(t, dPath)
	d := startSecondaryOn(t, dFS, a.addr, secondary.Options{})
	waitCaughtUp(t, a, d)
	// d records a's reservation and reports it a block further on.
	const block = 4096
	recorded := func(r zodb.Oid) func() bool { return func() bool { return dFS.OidReservation() >= r+block } }
	waitFor(t, "d to learn a's reservation at connection", recorded(a.OidReservation()))

	// Up to the first oid of a new block: a reserves it and announces the
	// one after it.
	for r0 := a.OidReservation(); a.OidReservation() == r0; {
		newOids(t, a, 1)
	}
	waitFor(t, "d to learn a's new reservation with no commit and no idle heartbeat", recorded(a.OidReservation()))
	held := newOids(t, a, block) // the rest of the block, and into the next
	d.close()
	d2 := openFS(t, dPath)
	defer d2.Close()
	if got := newOids(t, d2, 1); got <= held {
		t.Fatalf("d restarted as a primary hands out %s; a's clients hold oids up to %s", got, held)
	}
}
