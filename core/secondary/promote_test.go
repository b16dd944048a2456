package secondary_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// A relay (a secondary wrapping a primary) promoted while its primary is
// streaming stops replicating, becomes writable, and its own secondary
// receives the commits made through it afterwards.
func TestPromoteRelayWhileStreaming(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")

	// The relay: a secondary applying to a primary that serves downstream.
	relay := primary.New(openFS(t, filepath.Join(dir, "relay.fs")), primary.Options{Logger: testLogger(t).With("node", "relay")})
	_, err := relay.Listen(ctx, filepath.Join(dir, "relay.sock"))
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- relay.Serve(ctx) }()
	s := secondary.New(relay, p.addr, secondary.Options{Logger: testLogger(t).With("node", "secondary"),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	down := startSecondary(t, filepath.Join(dir, "down.fs"), filepath.Join(dir, "relay.sock"), secondary.Options{})

	if _, err := s.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrReadOnly) {
		t.Fatalf("begin on a secondary: %v, want ErrReadOnly", err)
	}
	if !s.ReadOnly() {
		t.Fatal("secondary not read-only before promotion")
	}

	// Keep the primary committing while we promote.
	w := newWorkload(t, p)
	w.run(20)
	waitFor(t, "the relay to receive something", func() bool { return s.LastTransaction() != 0 })
	var wg sync.WaitGroup
	stopWriting := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			w.update(zodb.TxnMeta{Description: []byte("during promotion")}, w.oids[0])
		}
	})
	time.Sleep(20 * time.Millisecond)

	start := time.Now()
	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("promotion took %v (relay at %s, primary at %s)", took, s.LastTransaction(), p.LastTransaction())
	close(stopWriting)
	wg.Wait()
	if err := <-runErr; !errors.Is(err, secondary.ErrPromoted) {
		t.Fatalf("run after promotion: %v", err)
	}
	if !s.Promoted() || s.ReadOnly() || s.PromotedAt().IsZero() {
		t.Fatalf("promoted=%v readOnly=%v at=%v", s.Promoted(), s.ReadOnly(), s.PromotedAt())
	}
	if err := s.Promote(ctx); err != nil {
		t.Fatalf("second promote: %v", err)
	}
	if err := s.Run(ctx); !errors.Is(err, secondary.ErrPromoted) {
		t.Fatalf("run on a promoted secondary: %v, want ErrPromoted", err)
	}

	// Nothing more arrives from the old primary.
	frozen := s.LastTransaction()
	w.run(5)
	time.Sleep(50 * time.Millisecond)
	if got := s.LastTransaction(); got != frozen {
		t.Fatalf("promoted node still replicating: last %s, was %s", got, frozen)
	}

	// Commits through the promoted node reach its downstream secondary.
	w2 := newWorkload(t, s)
	oid, err := s.NewOid(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last zodb.Tid
	for i := range 10 {
		last = w2.commit(zodb.TxnMeta{Description: []byte("after promotion")}, func(txn zodb.Txn) error {
			var prev zodb.Tid
			if i > 0 {
				prev = last
			}
			return txn.Store(oid, prev, []byte("new primary"))
		})
	}
	if last <= frozen {
		t.Fatalf("new commit %s not after the replicated %s", last, frozen)
	}
	waitFor(t, "the downstream secondary to get the new primary's commits", func() bool {
		return down.LastTransaction() == last
	})
	data, _, err := down.Load(ctx, oid)
	if err != nil || string(data) != "new primary" {
		t.Fatalf("downstream load: %q %v", data, err)
	}
	down.close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-serveErr; err != nil {
		t.Fatal(err)
	}
}

// Promoting a secondary that never connected works at once; Close after
// it is clean, and Promote after Close fails.
func TestPromoteIdleAndClosed(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := startSecondary(t, filepath.Join(dir, "s.fs"), filepath.Join(dir, "nobody.sock"), secondary.Options{})
	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	// Run ends (nil), or, if it had not started yet, refuses to (ErrPromoted).
	runErr := <-s.done
	s.done <- nil // for the cleanup
	if runErr != nil && !errors.Is(runErr, secondary.ErrPromoted) {
		t.Fatal(runErr)
	}
	txn, err := s.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	txn.Abort()
	s.close()
	if err := s.Promote(ctx); err != nil {
		t.Fatalf("promote again after close: %v (already promoted: nil)", err)
	}
	s2 := secondary.New(openFS(t, filepath.Join(dir, "s2.fs")), "1", secondary.Options{})
	s2.Close()
	if err := s2.Promote(ctx); !errors.Is(err, zodb.ErrClosed) {
		t.Fatalf("promote after close: %v, want ErrClosed", err)
	}
}

// beginSignal tells when the secondary begins applying a transaction.
type beginSignal struct {
	*fs.FileStorage
	began chan struct{}
}

func (b *beginSignal) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	select {
	case b.began <- struct{}{}:
	default:
	}
	return b.FileStorage.Begin(ctx, meta, opts)
}

// A transaction received whole when Promote stops replication is written,
// as Promote promises, even while it waits for the storage's commit lock.
func TestPromoteWritesTransactionReceivedWhole(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
	tid, _ := newWorkload(t, p).create(3)

	sfs := openFS(t, filepath.Join(dir, "s.fs"))
	hold, err := sfs.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{}) // the commit lock, for now
	if err != nil {
		t.Fatal(err)
	}
	st := &beginSignal{FileStorage: sfs, began: make(chan struct{}, 1)}
	s := startSecondaryOn(t, st, p.addr, secondary.Options{})
	select {
	case <-st.began:
	case <-time.After(converge):
		t.Fatal("the secondary did not begin applying")
	}
	promoted := make(chan error, 1)
	go func() { promoted <- s.Promote(ctx) }()
	time.Sleep(100 * time.Millisecond) // Promote has cancelled replication
	hold.Abort()
	if err := <-promoted; err != nil {
		t.Fatal(err)
	}
	if runErr := <-s.done; runErr != nil && !errors.Is(runErr, secondary.ErrPromoted) {
		t.Fatal(runErr)
	}
	s.done <- nil // for the cleanup
	if got := sfs.LastTransaction(); got != tid {
		t.Fatalf("promoted at %s; the transaction received whole, %s, was dropped", got, tid)
	}
}

// The old primary's ZEO clients keep the new oids it handed out and did
// not use, and bring them to the promoted secondary: its own new oids
// start far past them (PromoteOidGap), and stay past them after a
// restart. The relay's storage, under its primary layer, is promoted the
// same way. Over zrs2.0 (a zc.zrs primary's protocol) the secondary hears
// no reservation, and the gap alone keeps it past the clients' oids.
func TestPromotedSecondaryDoesNotReuseTheOldPrimarysOids(t *testing.T) {
	for _, tc := range []struct{ relay, zrs2 bool }{{false, false}, {true, false}, {false, true}} {
		relay := tc.relay
		dir := t.TempDir()
		ctx := context.Background()
		p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
		newWorkload(t, p).run(5)
		var held zodb.Oid // the greatest oid a client of p holds
		for range 300 {
			oid, err := p.NewOid(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held = oid
		}
		path := filepath.Join(dir, "s.fs")
		var st secondary.Storage = openFS(t, path)
		if relay {
			st = primary.New(st.(*fs.FileStorage), primary.Options{})
		}
		opts := secondary.Options{}
		beyond := held // what the promoted secondary's new oids must pass
		if tc.zrs2 {
			opts.Protocol = secondary.ProtoZRS2
		}
		s := startSecondaryOn(t, st, p.addr, opts)
		waitCaughtUp(t, p, s)
		if !tc.zrs2 {
			// Heard (zrs3 heartbeats carry it), p's reservation covers
			// held; the promotion's gap must come on top of it.
			waitOidsRecorded(t, "the secondary", st.(zodb.OidReserver), p.OidReservation())
			beyond = held + secondary.PromoteOidGap
		}
		if err := s.Promote(ctx); err != nil {
			t.Fatal(err)
		}
		if runErr := <-s.done; runErr != nil && !errors.Is(runErr, secondary.ErrPromoted) {
			t.Fatal(runErr)
		}
		s.done <- nil // for the cleanup
		oid, err := s.NewOid(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if oid <= beyond {
			t.Fatalf("%+v: the promoted secondary's new oid %s; the old primary's clients hold oids up to %s (and the promotion skips %d past what it heard)", tc, oid, held, secondary.PromoteOidGap)
		}
		s.close()
		s2 := openFS(t, path)
		if again, err := s2.NewOid(ctx); err != nil || again <= oid {
			t.Fatalf("%+v: after a restart, new oid %s (%v); %s was handed out before", tc, again, err, oid)
		}
		s2.Close()
	}
}

// When Data.fs.oid cannot be written at promotion (here Data.fs.oid.tmp is
// in the way; a full disk or a read-only directory does the same), Promote
// goes on, and this process still skips past the old primary's clients'
// oids: only the record for a restart is lost.
func TestPromoteSkipsOidsEvenIfItCannotRecordIt(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
	newWorkload(t, p).run(5)
	var held zodb.Oid
	for range 100 { // a ZEO client of p fetches a batch
		oid, err := p.NewOid(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = oid
	}
	path := filepath.Join(dir, "s.fs")
	sFS := openFS(t, path)
	s := startSecondaryOn(t, sFS, p.addr, secondary.Options{})
	waitCaughtUp(t, p, s)
	// The secondary records p's reservation (through Data.fs.oid.tmp)
	// once it has heard it; only then is the way clear to block it.
	waitOidsRecorded(t, "the secondary", sFS, p.OidReservation())
	if err := os.Mkdir(path+".oid.tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil
	got, err := s.NewOid(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Past the gap, not only past held: the secondary also heard p's
	// reservation, which covers held, so only the gap shows the skip.
	if got <= held+secondary.PromoteOidGap {
		t.Fatalf("promoted secondary hands out %s; the old primary's clients hold oids up to %s, and the promotion skips %d past them", got, held, secondary.PromoteOidGap)
	}
}

// A Promote whose context ends before replication has stopped (here: a
// transaction received whole waits for the storage's commit lock) leaves
// the secondary neither replicating nor writable. Its status must say so,
// not read as a secondary between two connection attempts (not
// connected, no error); a second Promote finishes the job and clears it.
func TestUnfinishedPromotionIsInTheStatus(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startPrimary(t, filepath.Join(dir, "p.fs"), "127.0.0.1:0")
	newWorkload(t, p).create(3)

	sfs := openFS(t, filepath.Join(dir, "s.fs"))
	hold, err := sfs.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{}) // the commit lock, for now
	if err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	let := func() { release.Do(func() { hold.Abort() }) }
	st := &beginSignal{FileStorage: sfs, began: make(chan struct{}, 1)}
	s := startSecondaryOn(t, st, p.addr, secondary.Options{})
	t.Cleanup(let) // before the secondary's Close: a failure must not leave Run waiting for the lock
	select {
	case <-st.began:
	case <-time.After(converge):
		t.Fatal("the secondary did not begin applying")
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	promoted := make(chan error, 1)
	go func() { promoted <- s.Promote(pctx) }()
	time.Sleep(200 * time.Millisecond) // well within the promotion's time
	if st := s.Status(); st.Promoting || st.LastError != "" {
		t.Fatalf("a promotion still within its time reported as unfinished: %+v", st)
	}
	if err := <-promoted; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Promote while replication could not stop: %v", err)
	}
	check := func(when string) {
		t.Helper()
		if s.Promoted() || !s.ReadOnly() {
			t.Fatalf("%s: promoted %v, read-only %v", when, s.Promoted(), s.ReadOnly())
		}
		if st := s.Status(); !st.Promoting || !strings.Contains(st.LastError, "promote again") {
			t.Fatalf("%s: status %+v; want the unfinished promotion named", when, st)
		}
	}
	check("Promote timed out")
	let()
	if runErr := <-s.done; !errors.Is(runErr, secondary.ErrPromoted) {
		t.Fatalf("Run: %v", runErr)
	}
	s.done <- nil // for the cleanup
	check("Run stopped")
	if s.Status().Connected {
		t.Fatal("Run stopped, and the status says connected")
	}
	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !s.Promoted() || s.ReadOnly() || st.LastError != "" || st.Promoting {
		t.Fatalf("promoted again: promoted %v, read-only %v, status %+v", s.Promoted(), s.ReadOnly(), st)
	}
}

// slowSkip holds Promote inside SkipOids until released, and records
// whether the storage was closed meanwhile.
type slowSkip struct {
	*fs.FileStorage
	entered, release chan struct{}
	mu               sync.Mutex
	closedDuringSkip bool
	inSkip           bool
}

func (s *slowSkip) SkipOids(n uint64) error {
	s.mu.Lock()
	s.inSkip = true
	s.mu.Unlock()
	close(s.entered)
	<-s.release
	s.mu.Lock()
	s.inSkip = false
	s.mu.Unlock()
	return s.FileStorage.SkipOids(n)
}

func (s *slowSkip) Close() error {
	s.mu.Lock()
	if s.inSkip {
		s.closedDuringSkip = true
	}
	s.mu.Unlock()
	return s.FileStorage.Close()
}

// Close during a Promote waits for it: the promotion must not finish, and
// report the storage writable, on a storage already closed.
func TestCloseWaitsForAPromotionInProgress(t *testing.T) {
	dir := t.TempDir()
	st := &slowSkip{FileStorage: openFS(t, filepath.Join(dir, "s.fs")), entered: make(chan struct{}), release: make(chan struct{})}
	s := secondary.New(st, filepath.Join(dir, "nobody.sock"), secondary.Options{Logger: testLogger(t)})
	promoted := make(chan error, 1)
	go func() { promoted <- s.Promote(context.Background()) }()
	<-st.entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Errorf("Close returned (%v) while Promote was still promoting", err)
		closed <- err
	case <-time.After(100 * time.Millisecond):
	}
	close(st.release)
	if err := <-promoted; err != nil {
		t.Fatalf("Promote: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closedDuringSkip {
		t.Error("the storage was closed while Promote was making it writable")
	}
}
