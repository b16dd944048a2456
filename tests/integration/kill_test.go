package integration

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
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
// acknowledgement sent well before the transaction's final status was
// written (a kill must land in between), not one sent before the fsync:
// that an acknowledgement waits for Finish, status and fsync, is
// core/secondary's TestAckWaitsForFinish.
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

// The index save of a graceful stop, interrupted: a primary child on a
// file of 150,000 objects (Data.fs.index takes a while to write)
// commits, gets SIGTERM, and is killed with SIGKILL a varying few ms
// later, 10 times, so that the kill lands before, during or after its
// Close writes Data.fs.index. Each time the file must open (recovery),
// hold every commit the child acknowledged and load every object as a
// fresh scan of the file does; and Data.fs.index must read and be
// exactly the index of the file up to the position it names, whether the
// open then trusts it or not (it is written to a temp file and renamed:
// a torn index must never be in place). As every kill test here, this
// cannot catch a missing fsync.
func TestKillDuringIndexSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	const txns, perTxn, kills = 150, 1000, 10
	ctx := context.Background()
	st := openFS(t, path)
	for i := range txns {
		txn, err := st.Begin(ctx, zodb.TxnMeta{Description: []byte("bulk " + itoa(i))}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j := range perTxn {
			oid, err := st.NewOid(ctx)
			if err == nil {
				err = txn.Store(oid, 0, []byte("object "+itoa(i)+"."+itoa(j)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	save := time.Since(start)
	t.Logf("%d objects; the close that saved the index took %v", txns*perTxn, save)

	rng := rand.New(rand.NewPCG(17, 3))
	sock := filepath.Join(dir, "p.sock")
	var old, saved, midWrite int
	// The delays close in on the save: the first kill comes at once, the
	// second well after the save; each later one at a random point between
	// the latest delay that found the previous index and the earliest that
	// found the new one.
	lo, hi := time.Duration(0), 5*save+50*time.Millisecond
	for trial := range kills {
		c := startPrimaryChild(t, path, sock, 200, 0)
		waitFor(t, "commits", func() bool { n, _ := c.acked(); return n >= 20 }, c.stderr)
		delay := lo + time.Duration(rng.Float64()*float64(hi-lo))
		switch trial {
		case 0:
			delay = 0
		case 1:
			delay = hi
		}
		c.terminate(t)
		time.Sleep(delay)
		c.kill()
		what := "kill " + itoa(trial) + " (" + delay.String() + " after SIGTERM)"
		size := fileSize(t, path)
		_, err := os.Stat(path + ".index.index_tmp")
		writing := err == nil // killed while writing the new index
		switch ipos := checkIndexFile(t, what, path); {
		case ipos == size:
			saved++
			hi = min(hi, delay)
		case writing:
			old++
			midWrite++
		default:
			old++
			lo = max(lo, delay)
		}

		// Reopen (recovery, the index trusted or not), then compare
		// with a fresh scan of the recovered file.
		st := openFS(t, path)
		checkAcked(t, what, iterStorage(t, st), c.ackedTids())
		fresh := filepath.Join(t.TempDir(), "fresh.fs")
		copyPrefix(t, path, fresh, fileSize(t, path))
		ref := openFS(t, fresh)
		sameObjects(t, what, ref, st)
		if err := ref.Close(); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: all %d acknowledged commits kept; index after the kill: previous %d (%d while writing the new one), new %d so far", what, len(c.ackedTids()), old, midWrite, saved)
	}
	if _, err := fsVerify(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("index after the kill: previous one in place %d times (%d of them while the new one was being written), the new one %d", old, midWrite, saved)
	if old == 0 || saved == 0 {
		t.Fatalf("the kills did not straddle the index save (previous index %d times, new %d)", old, saved)
	}
}

// copyPrefix writes the first n bytes of src to dst (no index file).
func copyPrefix(t *testing.T, src, dst string, n int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b[:n], 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkIndexFile reads path's Data.fs.index, if any: it must read (it is
// written aside and renamed, so a killed process never leaves a torn one
// in place) and hold exactly what a fresh scan of the file up to its
// position finds. It returns that position (0 without an index file).
func checkIndexFile(t *testing.T, what, path string) int64 {
	t.Helper()
	ipos, idx, err := fs.ReadIndexFile(path + ".index")
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return 0
	case err != nil:
		t.Fatalf("%s: Data.fs.index is in place but unreadable: %v", what, err)
	}
	if ipos > fileSize(t, path) {
		t.Fatalf("%s: the index covers %d bytes, the file has %d", what, ipos, fileSize(t, path))
	}
	prefix := filepath.Join(t.TempDir(), "prefix.fs")
	copyPrefix(t, path, prefix, ipos)
	if err := openFS(t, prefix).Close(); err != nil { // rebuilds and saves its index
		t.Fatal(err)
	}
	rpos, ref, err := fs.ReadIndexFile(prefix + ".index")
	if err != nil {
		t.Fatal(err)
	}
	if rpos != ipos || ref.Len() != idx.Len() {
		t.Fatalf("%s: the index names position %d and %d objects; a scan up to there finds %d and %d", what, ipos, idx.Len(), rpos, ref.Len())
	}
	ref.Range(func(oid zodb.Oid, pos int64) bool {
		if got, ok := idx.Get(oid); !ok || got != pos {
			t.Fatalf("%s: the index has %s at %d (present %v), a scan finds it at %d", what, oid, got, ok, pos)
		}
		return true
	})
	return ipos
}

// sameObjects fails unless got holds the same objects as want, each with
// the same current serial and data.
func sameObjects(t *testing.T, what string, want, got *fs.FileStorage) {
	t.Helper()
	ctx := context.Background()
	oids := want.Oids()
	if n := len(got.Oids()); n != len(oids) {
		t.Fatalf("%s: %d objects after the reopen, a fresh scan finds %d", what, n, len(oids))
	}
	for _, oid := range oids {
		wd, ws, err := want.Load(ctx, oid)
		if err != nil {
			t.Fatal(err)
		}
		gd, gs, err := got.Load(ctx, oid)
		if err != nil || gs != ws || !bytes.Equal(gd, wd) {
			t.Fatalf("%s: %s loads as serial %s (err %v) after the reopen, %s in a fresh scan", what, oid, gs, err, ws)
		}
	}
}
