package integration

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// The acceptance scenario "kill -9 of the secondary at random points
// during a stream of ≥ 1,000 transactions, 20 times": a zrs secondary
// process is killed with SIGKILL while the primary commits, and restarted.
// A kill can land anywhere: in a restore, in a vote, in an fsync, in the
// index save, while catching up or while live. Each time the file must
// open (recovery cuts only an unfinished transaction), pass Verify, and
// hold exactly a prefix of the primary's history; at the end, caught up,
// it must be byte-identical and pass Python's fstest.
func TestKillSecondaryDuringStream(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath)

	// The committer: at least minTxns, and on until the kills are done.
	const minTxns, kills = 1000, 20
	w := newWorkload(p, 1)
	var stopCommits atomic.Bool
	var committed atomic.Int64
	var wg sync.WaitGroup
	commitErr := make(chan error, 1)
	wg.Go(func() {
		for !stopCommits.Load() || w.n < minTxns {
			if err := w.step(); err != nil {
				commitErr <- err
				return
			}
			committed.Store(int64(w.n))
		}
	})
	waitFor(t, "the first commits", func() bool { return committed.Load() > 50 })

	rng := rand.New(rand.NewPCG(20, 9))
	snaps := newSnapshots(t)
	behind, progressed := 0, 0
	prev := 0
	for trial := range kills {
		s := startSecondaryProc(t, bin, spath, p.addr)
		time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		s.kill()
		atKill := int(committed.Load())
		n := checkSecondaryFile(t, "after kill "+itoa(trial), spath, iterStorage(t, p))
		snaps.add(t, spath)
		if n > prev {
			progressed++
		}
		if n < atKill {
			behind++
		}
		prev = n
		t.Logf("kill %d: secondary holds %d of the %d committed transactions", trial, n, committed.Load())
	}
	stopCommits.Store(true)
	wg.Wait()
	select {
	case err := <-commitErr:
		t.Fatalf("committing: %v", err)
	default:
	}
	if progressed < kills/2 {
		t.Fatalf("the secondary progressed between only %d of %d kills: the kills did not hit a stream", progressed, kills)
	}
	t.Logf("%d transactions committed; the secondary was behind at %d of %d kills", w.n, behind, kills)

	// Caught up, the restarted secondary's file is the primary's, byte for byte.
	s := startSecondaryProc(t, bin, spath, p.addr)
	waitSameBytes(t, ppath, spath, s.stderr) // the idle primary's file does not change
	s.stop(t)
	p.stop(t)
	sameFile(t, ppath, spath)
	comparePrefix(t, "final", iterFile(t, ppath), iterFile(t, spath), true)
	if _, err := fsVerify(spath); err != nil {
		t.Fatal(err)
	}
	snaps.add(t, spath)
	pythonFstest(t, snaps.paths...)
}

// A primary killed with SIGKILL while it commits and streams, then
// restarted, 5 times: the recovered primary's file holds every commit
// the killed process acknowledged, the secondary never holds a
// transaction the recovered primary lacks (only durable transactions
// are streamed),
// reconnects by itself to each new primary process, and ends identical.
// (Graceful primary restarts are covered in core/secondary and cmd/zrs.)
func TestKillPrimaryDuringStream(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	sock := filepath.Join(dir, "p.sock")
	rng := rand.New(rand.NewPCG(5, 5))

	sec := secondary.New(openFS(t, spath), sock, secondary.Options{Logger: testLogger().With("node", "secondary"),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	runDone := make(chan error, 1)
	go func() { runDone <- sec.Run(context.Background()) }()
	var closeOnce sync.Once
	closeSec := func() {
		closeOnce.Do(func() {
			if err := sec.Close(); err != nil {
				t.Errorf("secondary close: %v", err)
			}
			if err := <-runDone; err != nil {
				t.Errorf("secondary run: %v", err)
			}
		})
	}
	defer closeSec()

	for trial := range 5 {
		before := sec.LastTransaction()
		c := startPrimaryChild(t, ppath, sock, 1000+rng.IntN(30000), 300)
		waitFor(t, "the secondary to apply something from this primary", func() bool {
			return sec.LastTransaction() > before
		}, c.stderr)
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		c.kill()
		// Open the killed primary's file as its restart will (recovery),
		// while the secondary keeps running and retrying.
		pst := openFS(t, ppath)
		acked := c.ackedTids()
		checkAcked(t, "after primary kill "+itoa(trial), iterStorage(t, pst), acked)
		n := comparePrefix(t, "after primary kill "+itoa(trial), iterStorage(t, pst), iterStorage(t, sec), false)
		if err := pst.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("primary kill %d: the primary's file holds all %d commits it acknowledged; the secondary holds %d transactions", trial, len(acked), n)
	}
	c := startPrimaryChild(t, ppath, sock, 100, 200)
	waitFor(t, "a few more commits", func() bool { n, _ := c.acked(); return n >= 20 }, c.stderr)
	c.send(t, "pause")
	waitFor(t, "the secondary to be streamed to", func() bool {
		_, last := c.acked()
		return sec.LastTransaction() >= last
	}, c.stderr)
	c.stop(t) // a graceful stop streams what is committed before closing
	pst := openFS(t, ppath)
	last := pst.LastTransaction()
	if err := pst.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the secondary to catch up", func() bool { return sec.LastTransaction() == last })
	closeSec()
	sameFile(t, ppath, spath)
	if _, err := fsVerify(spath); err != nil {
		t.Fatal(err)
	}
}

// With a sync primary (ANY 1), a commit is acknowledged only once a
// secondary has committed it: a zrs secondary process killed with SIGKILL
// at random points while the primary commits, 12 times, holds after
// recovery every transaction whose commit the primary had acknowledged by
// then. (The secondary writes the next transactions while earlier ones
// wait for their fsync; its acknowledgement must still wait.) A killed
// process leaves its writes in the page cache, so this catches an
// acknowledgement sent before the transaction's final status was
// written, not one sent before the fsync; that order is core/secondary's
// TestApplyOverlapsFinishes.
func TestKillSyncSecondaryKeepsAcknowledged(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimaryWith(t, ppath, primary.Options{Durability: primary.Durability{
		Mode: primary.Sync, Quorum: 1, Timeout: 300 * time.Millisecond, OnTimeout: primary.Fail}})

	// Committers: each commit creates an object (no conflicts); a commit
	// no secondary confirmed fails with the sync timeout.
	var mu sync.Mutex
	var acked []zodb.Tid
	var stop atomic.Bool
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; !stop.Load(); i++ {
				txn, err := p.Begin(ctx, zodb.TxnMeta{Description: []byte("sync " + itoa(c) + "." + itoa(i))}, zodb.BeginOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				oid, err := p.NewOid(ctx)
				if err == nil {
					err = txn.Store(oid, 0, []byte("payload of "+itoa(c)+"."+itoa(i)))
				}
				if err == nil {
					err = txn.Vote(ctx)
				}
				if err != nil {
					txn.Abort()
					t.Error(err)
					return
				}
				if tid, err := txn.Finish(ctx); err == nil {
					mu.Lock()
					acked = append(acked, tid)
					mu.Unlock()
				}
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	rng := rand.New(rand.NewPCG(7, 11))
	checked := 0
	for trial := range 12 {
		s := startSecondaryProc(t, bin, spath, p.addr)
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		s.kill()
		mu.Lock()
		want := slices.Clone(acked)
		mu.Unlock()
		have := make(map[zodb.Tid]bool)
		checkSecondaryFile(t, "after kill "+itoa(trial), spath, iterStorage(t, p))
		it := iterFile(t, spath)
		for {
			info, err := it.Next(context.Background())
			if err != nil {
				break
			}
			have[info.Tid] = true
		}
		for _, tid := range want {
			if !have[tid] {
				t.Fatalf("kill %d: the primary acknowledged %s, which the secondary's file lacks", trial, tid)
			}
		}
		t.Logf("kill %d: %d acknowledged commits, all on the secondary (%d transactions there)", trial, len(want), len(have))
		checked = len(want)
	}
	if checked < 200 {
		t.Fatalf("only %d commits were acknowledged: the kills did not hit a sync stream", checked)
	}
}
