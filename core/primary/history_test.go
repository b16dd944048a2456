package primary

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// commitAs commits a small transaction with the given tid and status, as
// a copy of a packed file would.
func commitAs(t *testing.T, st zodb.Storage, tid zodb.Tid, status zodb.TxnStatus) {
	t.Helper()
	testutil.CommitNew(t, st, zodb.TxnMeta{Description: []byte("copied")}, zodb.BeginOptions{Tid: tid, Status: status}, []byte("data"))
}

// streamedFrom connects a zrs2.0 secondary at start and returns the tids
// it is sent until the stream ends after catching up.
func streamedFrom(t *testing.T, addr string, start zodb.Tid) []zodb.Tid {
	t.Helper()
	c := dial(t, addr, []byte(zrsproto.Proto20), tidBytes(start))
	zrsproto.WriteFrame(c, []byte("x")) // end the stream once caught up
	got, err := readAll(t, c, start)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("from %s: got %v, then %v; want EOF", start, got, err)
	}
	return got
}

// A zrs2 secondary whose last tid lies inside the history of a primary
// whose file was never packed, but is not one of its transactions, has
// transactions the primary lacks (an old primary brought back after a
// failover): it is refused, not streamed the primary's later
// transactions on top of its own.
func TestZRS2DivergedStartRefused(t *testing.T) {
	p := serve(t)
	var tids []zodb.Tid
	for range 6 {
		tids = append(tids, commit(t, p, 10))
	}
	for _, i := range []int{0, 2, 4} {
		start := tids[i] + (tids[i+1]-tids[i])/2 // between two of its transactions
		if start == tids[i] {
			t.Fatalf("tids %s and %s are adjacent", tids[i], tids[i+1])
		}
		expectClosed(t, dial(t, p.addr, []byte(zrsproto.Proto20), tidBytes(start)))
	}
	if n := len(p.Status().Secondaries); n != 0 {
		t.Errorf("%d secondaries listed after refusals", n)
	}
	// Its own transactions, and a tid below its first (which zrs2 cannot
	// tell from another database), are still served.
	if got := streamedFrom(t, p.addr, tids[2]); fmt.Sprint(got) != fmt.Sprint(tids[3:]) {
		t.Errorf("from %s: got %v, want %v", tids[2], got, tids[3:])
	}
	if got := streamedFrom(t, p.addr, tids[0]-1); fmt.Sprint(got) != fmt.Sprint(tids) {
		t.Errorf("from %s: got %v, want %v", tids[0]-1, got, tids)
	}
}

// In a packed file (its first transactions marked "p") a missing tid may
// be a transaction the pack removed: a zc.zrs secondary that was behind
// when its primary was packed keeps replicating, from the next one.
func TestZRS2PackedGapStreamed(t *testing.T) {
	st := openTestFS(t)
	base := zodb.Tid(0x03e0000000000000)
	commitAs(t, st, base, zodb.StatusPacked)
	commitAs(t, st, base+10, zodb.StatusPacked)
	commitAs(t, st, base+20, zodb.StatusCommitted)
	commitAs(t, st, base+30, zodb.StatusCommitted)
	p := serveStorage(t, st, Options{})
	for start, want := range map[zodb.Tid][]zodb.Tid{
		base + 5:  {base + 10, base + 20, base + 30},
		base + 15: {base + 20, base + 30},
	} {
		if got := streamedFrom(t, p.addr, start); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("from %s: got %v, want %v", start, got, want)
		}
	}
}
