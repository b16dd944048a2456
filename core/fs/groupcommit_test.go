package fs_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// heldFsync makes the first fsync of s wait until release is called;
// entered is closed when it starts waiting. release may be called more
// than once: defer it right away, so that a test failing while the fsync
// is held does not hang in Close.
func heldFsync(s *fs.FileStorage) (entered <-chan struct{}, release func()) {
	return holdFsync(s, nil)
}

// holdFsync is heldFsync whose fsyncs all fail with fail, when not nil.
func holdFsync(s *fs.FileStorage, fail error) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var first, done sync.Once
	fs.SetFsync(s, func(real func() error) error {
		first.Do(func() {
			close(in)
			<-out
		})
		if fail != nil {
			return fail
		}
		return real()
	})
	return in, func() { done.Do(func() { close(out) }) }
}

// finishAsync votes and finishes tx in a goroutine; the result arrives on
// the returned channel.
func finishAsync(t *testing.T, tx zodb.Txn) <-chan finishResult {
	t.Helper()
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	ch := make(chan finishResult, 1)
	go func() {
		tid, err := tx.Finish(bg)
		ch <- finishResult{tid, err}
	}()
	return ch
}

// await waits for ch to be closed or to deliver, or fails the test
// naming what it waited for: a regression fails, not hang until the test
// binary's timeout.
func await[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("still waiting after 30 s for %s", what)
	}
}

type finishResult struct {
	tid zodb.Tid
	err error
}

func begin(t *testing.T, s *fs.FileStorage) zodb.Txn {
	t.Helper()
	tx, err := s.Begin(bg, zodb.TxnMeta{Description: []byte("group")}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// While a finished transaction waits for its fsync, readers see only what
// is durable, the next transactions commit behind it and are checked
// against it, and one fsync then makes them all durable.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const a, b = zodb.Oid(1), zodb.Oid(2)
	t0 := stCommit(t, s, stWrite{a, 0, []byte("a0")})
	entered, release := heldFsync(s)
	defer release()
	before := s.Fsyncs()

	// T1 updates a and creates b; its fsync is held.
	tx1 := begin(t, s)
	if err := tx1.Store(a, t0, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Store(b, 0, []byte("b1")); err != nil {
		t.Fatal(err)
	}
	done1 := finishAsync(t, tx1)
	await(t, entered, "the fsync to start")

	// Readers: nothing of T1.
	if d, ser := stLoad(t, s, a); string(d) != "a0" || ser != t0 {
		t.Fatalf("load of a during T1's fsync: %q %s", d, ser)
	}
	if _, _, err := s.Load(bg, b); !errors.Is(err, zodb.ErrNotFound) {
		t.Fatalf("load of b, created by T1, during its fsync: %v", err)
	}
	if d, ser, next, err := s.LoadBefore(bg, a, zodb.MaxTid); err != nil || string(d) != "a0" || ser != t0 || next != 0 {
		t.Fatalf("loadBefore of a during T1's fsync: %q %s %s %v", d, ser, next, err)
	}
	if h, err := s.History(bg, a, 10); err != nil || len(h) != 1 {
		t.Fatalf("history of a during T1's fsync: %v %v", h, err)
	}
	if last := s.LastTransaction(); last != t0 {
		t.Fatalf("LastTransaction during T1's fsync: %s, want %s", last, t0)
	}
	if got := iterTids(t, s); len(got) != 1 || got[0] != t0 {
		t.Fatalf("iterator during T1's fsync: %v", got)
	}
	if n, oids := s.Len(), s.Oids(); n != 1 || len(oids) != 1 || oids[0] != a {
		t.Fatalf("Len %d, Oids %v during T1's fsync; want 1, [%s]", n, oids, a)
	}

	// Writers: T2 begins at once, conflicts with T1 on the old serial and
	// builds on T1's.
	tx2 := begin(t, s)
	err = tx2.Store(a, t0, []byte("a2"))
	var ce *zodb.ConflictError
	if !errors.As(err, &ce) || ce.Old != t0 || ce.Committed <= t0 {
		t.Fatalf("T2 storing a on the serial T1 replaced: %v", err)
	}
	t1 := ce.Committed
	if err := tx2.Store(a, t1, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Store(b, t1, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	done2 := finishAsync(t, tx2)
	// T3 begins once T2 has finished writing (the commit lock is free
	// again), and undoes nothing but checks b's serial against T2.
	tx3 := begin(t, s)
	err = tx3.Store(b, t1, []byte("b3"))
	if !errors.As(err, &ce) || ce.Old != t1 || ce.Committed <= t1 {
		t.Fatalf("T3 storing b on T1's serial: %v", err)
	}
	t2 := ce.Committed
	if err := tx3.Store(b, t2, []byte("b3")); err != nil {
		t.Fatal(err)
	}
	done3 := finishAsync(t, tx3)
	tx4 := begin(t, s) // T3 has finished writing
	tx4.Abort()
	select {
	case r := <-done2:
		t.Fatalf("T2 finished (%s, %v) before T1's fsync returned", r.tid, r.err)
	case r := <-done3:
		t.Fatalf("T3 finished (%s, %v) before T1's fsync returned", r.tid, r.err)
	case <-time.After(20 * time.Millisecond):
	}

	release()
	r1, r2, r3 := <-done1, <-done2, <-done3
	if r1.err != nil || r2.err != nil || r3.err != nil {
		t.Fatalf("finish: %v, %v, %v", r1.err, r2.err, r3.err)
	}
	if r1.tid != t1 || r2.tid != t2 || !(t1 < t2 && t2 < r3.tid) {
		t.Fatalf("tids %s %s %s, conflicts named %s %s", r1.tid, r2.tid, r3.tid, t1, t2)
	}
	if n := s.Fsyncs() - before; n != 2 {
		t.Fatalf("%d fsyncs for 3 commits, want 2 (T1's, then one for T2 and T3)", n)
	}
	if d, ser := stLoad(t, s, a); string(d) != "a2" || ser != t2 {
		t.Fatalf("a after the commits: %q %s", d, ser)
	}
	if d, ser := stLoad(t, s, b); string(d) != "b3" || ser != r3.tid {
		t.Fatalf("b after the commits: %q %s", d, ser)
	}
	if last := s.LastTransaction(); last != r3.tid {
		t.Fatalf("LastTransaction %s, want %s", last, r3.tid)
	}
	if n, oids := s.Len(), s.Oids(); n != 2 || len(oids) != 2 {
		t.Fatalf("Len %d, Oids %v after the commits; want 2", n, oids)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Verify(bg, path, fs.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func iterTids(t *testing.T, s *fs.FileStorage) []zodb.Tid {
	t.Helper()
	it, err := s.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []zodb.Tid
	for {
		info, err := it.Next(bg)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.Tid)
	}
}

// finishingIntoFailingFsync opens a new storage, commits one transaction
// and finishes a second (T1) whose fsync waits until fail is called, then
// fails with errDisk, as do all later ones. done1 gets T1's result.
func finishingIntoFailingFsync(t *testing.T) (s *fs.FileStorage, path string, done1 <-chan finishResult, fail func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t0 := stCommit(t, s, stWrite{1, 0, []byte("a0")})
	entered, fail := holdFsync(s, errDisk)
	t.Cleanup(fail)
	tx1 := begin(t, s)
	if err := tx1.Store(1, t0, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	done1 = finishAsync(t, tx1)
	await(t, entered, "the fsync to start")
	return s, path, done1, fail
}

// A failed fsync fails every transaction it would have made durable and
// closes the storage; the file then opens and verifies.
func TestGroupCommitFsyncFails(t *testing.T) {
	s, path, done1, release := finishingIntoFailingFsync(t)
	tx2 := begin(t, s)
	if err := tx2.Store(2, 0, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	done2 := finishAsync(t, tx2)
	tx3 := begin(t, s) // T2 has finished writing
	tx3.Abort()
	release()
	for i, ch := range []<-chan finishResult{done1, done2} {
		if r := <-ch; !errors.Is(r.err, errDisk) || r.tid != 0 {
			t.Fatalf("T%d: %s, %v; want the fsync error", i+1, r.tid, r.err)
		}
	}
	if _, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrClosed) {
		t.Fatalf("begin after a failed fsync: %v", err)
	}
	for range 2 {
		if err := s.Close(); !errors.Is(err, errDisk) {
			t.Fatalf("close after a failed fsync: %v; want the fsync error", err)
		}
	}
	if _, err := fs.Verify(bg, path, fs.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	s2, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("reopen after a failed fsync: %v", err)
	}
	s2.Close()
}

// A failed fsync closes the storage, but with group commit the next
// transaction may be writing its vote at that moment. Data.fs.lock must
// stay held until that write is over (the transaction is aborted and cut),
// or another process could open the file and append while the write goes
// on underneath it.
func TestGroupCommitFsyncFailsDuringVoteWrite(t *testing.T) {
	s, path, done1, failFsync := finishingIntoFailingFsync(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	withT1 := st.Size()

	// T2 votes; its write stops halfway until resume.
	writing, resume := make(chan struct{}), make(chan struct{})
	var writeOnce, resumed sync.Once
	resumeWrite := func() { resumed.Do(func() { close(resume) }) }
	defer resumeWrite()
	fs.SetWriteAt(s, func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
		n, err := real(p, off)
		writeOnce.Do(func() { close(writing); <-resume })
		return n, err
	})
	tx2 := begin(t, s)
	if err := tx2.Store(2, 0, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	voted := make(chan error, 1)
	go func() { voted <- tx2.Vote(bg) }()
	await(t, writing, "the vote to write")

	failFsync()
	// While T2's write is under way, the lock must stay held.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		l, err := fs.LockFileFor(path + ".lock")
		if err == nil {
			l.Close()
			t.Fatal("Data.fs.lock was released while a vote was still writing Data.fs")
		}
		if !errors.Is(err, zodb.ErrLocked) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	resumeWrite()
	if r := <-done1; !errors.Is(r.err, errDisk) {
		t.Fatalf("T1: %v; want the fsync error", r.err)
	}
	<-s.Failed()
	<-voted // its write completed; the storage then aborted it
	if _, err := tx2.Finish(bg); err == nil {
		t.Fatal("T2 finished on a storage closed by a failed fsync")
	}
	l, err := fs.LockFileFor(path + ".lock")
	if err != nil {
		t.Fatalf("the storage closed itself but kept its lock: %v", err)
	}
	l.Close()
	if st, err := os.Stat(path); err != nil || st.Size() != withT1 {
		t.Fatalf("Data.fs is %d bytes (%v); want %d: T2 cut, T1 left for the next open to judge", st.Size(), err, withT1)
	}
}

// A status byte that cannot be written at finish closes the storage: the
// commit fails, Close reports why, the lock is released, and the next
// open cuts the transaction left with status 'c'.
func TestFinishStatusWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := stCommit(t, s, stWrite{1, 0, []byte("a0")})
	fs.SetWriteAt(s, func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
		if len(p) == 1 {
			return 0, errDisk
		}
		return real(p, off)
	})
	tx := begin(t, s)
	if err := tx.Store(1, t0, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Failed():
		t.Fatal("Failed closed before anything failed")
	default:
	}
	if r := <-finishAsync(t, tx); !errors.Is(r.err, errDisk) || r.tid != 0 {
		t.Fatalf("finish: %s, %v; want the write error", r.tid, r.err)
	}
	<-s.Failed()
	if _, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrClosed) {
		t.Fatalf("begin after a failed finish: %v", err)
	}
	for range 2 {
		if err := s.Close(); !errors.Is(err, errDisk) {
			t.Fatalf("close after a failed finish: %v; want the write error", err)
		}
	}
	s2, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("reopen after a failed finish: %v", err)
	}
	defer s2.Close()
	if last := s2.LastTransaction(); last != t0 {
		t.Fatalf("last transaction after reopen %s, want %s: the unfinished one is cut", last, t0)
	}
}

// Many committers at once, with a slow disk: every commit that returned
// is there, in tid order, the shared counter counts every successful
// increment, and commits shared fsyncs.
func TestGroupCommitConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const counter = zodb.Oid(0)
	stCommit(t, s, stWrite{counter, 0, []byte("0")})
	fs.SetFsync(s, func(real func() error) error {
		time.Sleep(time.Millisecond) // a disk slower than this machine's
		return real()
	})
	before := s.Fsyncs()
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var mu sync.Mutex
	committed := map[zodb.Tid]bool{}
	increments := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := zodb.Oid(100 + w)
			var ownSerial zodb.Tid
			for i := range rounds {
				// Every fifth commit also increments the shared counter;
				// the others touch only the worker's own object, so they
				// can share fsyncs.
				inc := i%5 == 0
				tid, err := commitWithRetry(s, counter, inc, own, ownSerial, fmt.Appendf(nil, "w%d r%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				ownSerial = tid
				mu.Lock()
				committed[tid] = true
				if inc {
					increments++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d, _ := stLoad(t, s, counter); string(d) != fmt.Sprint(increments) || increments != workers*rounds/5 {
		t.Fatalf("counter %q after %d increments", d, increments)
	}
	tids := iterTids(t, s)
	for i := 1; i < len(tids); i++ {
		if tids[i] <= tids[i-1] {
			t.Fatalf("tids out of order at %d: %s then %s", i, tids[i-1], tids[i])
		}
	}
	for _, tid := range tids[1:] {
		delete(committed, tid)
	}
	if len(committed) != 0 || len(tids) != workers*rounds+1 {
		t.Fatalf("%d transactions in the file, %d acknowledged ones missing", len(tids), len(committed))
	}
	if n := s.Fsyncs() - before; n >= workers*rounds {
		t.Fatalf("%d fsyncs for %d concurrent commits: no commit shared one", n, workers*rounds)
	} else {
		t.Logf("%d commits, %d fsyncs", workers*rounds, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Verify(bg, path, fs.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// commitWithRetry writes own and, with inc, increments the counter object,
// retrying on a conflict with the counter's current serial (an increment
// still waiting for its fsync conflicts until it is durable and loads).
func commitWithRetry(s *fs.FileStorage, counter zodb.Oid, inc bool, own zodb.Oid, ownSerial zodb.Tid, data []byte) (zodb.Tid, error) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		cur, serial, err := s.Load(bg, counter)
		if err != nil {
			return 0, err
		}
		var n int
		fmt.Sscan(string(cur), &n)
		tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			return 0, err
		}
		if inc {
			err = tx.Store(counter, serial, fmt.Append(nil, n+1))
		}
		var ce *zodb.ConflictError
		if errors.As(err, &ce) {
			tx.Abort()
			continue
		}
		if err == nil {
			err = tx.Store(own, ownSerial, data)
		}
		if err == nil {
			err = tx.Vote(bg)
		}
		if err != nil {
			tx.Abort()
			return 0, err
		}
		return tx.Finish(bg)
	}
	return 0, errors.New("conflicts for 20 s in a row")
}

// Close while transactions wait for an fsync (and one more is voted behind
// them): the voted one is aborted, the finished ones are fsynced and their
// Finish succeeds, and the index Close saves covers them all.
func TestGroupCommitCloseWithPendingCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const a, b, c = zodb.Oid(1), zodb.Oid(2), zodb.Oid(3)
	t0 := stCommit(t, s, stWrite{a, 0, []byte("a0")})
	entered, release := heldFsync(s)
	defer release()
	tx1 := begin(t, s)
	if err := tx1.Store(a, t0, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	done1 := finishAsync(t, tx1)
	await(t, entered, "the fsync to start")
	tx2 := begin(t, s)
	if err := tx2.Store(b, 0, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	done2 := finishAsync(t, tx2)
	tx3 := begin(t, s) // T2 has finished writing
	if err := tx3.Store(c, 0, []byte("c3")); err != nil {
		t.Fatal(err)
	}
	if err := tx3.Vote(bg); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while T1's fsync is held", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	r1, r2 := <-done1, <-done2
	if r1.err != nil || r2.err != nil {
		t.Fatalf("finish of the pending transactions: %v, %v", r1.err, r2.err)
	}
	if _, err := tx3.Finish(bg); err == nil {
		t.Fatal("T3, voted when Close came, finished after it")
	}
	pos, _, err := fs.ReadIndexFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != pos {
		t.Fatalf("index saved at %d, file size %d (%v)", pos, st.Size(), err)
	}
	s2, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for oid, want := range map[zodb.Oid]zodb.Tid{a: r1.tid, b: r2.tid} {
		if _, ser := stLoad(t, s2, oid); ser != want {
			t.Fatalf("object %s: serial %s after reopen, want %s", oid, ser, want)
		}
	}
	if _, _, err := s2.Load(bg, c); !errors.Is(err, zodb.ErrNotFound) {
		t.Fatalf("object of the aborted T3 after reopen: %v", err)
	}
	if _, err := fs.Verify(bg, path, fs.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A commit is acknowledged only after fsync(2) of Data.fs itself, taken
// once the transaction's bytes are in the file: a process kill cannot
// show a missing fsync (the page cache survives it), so this looks at the
// call itself.
func TestFinishFsyncsDataFs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	var mu sync.Mutex
	var synced []int64 // Data.fs's size at each of its fsyncs whose last transaction was finished
	fs.SetSyncFile(t, func(real func(*os.File) error, f *os.File) error {
		if f.Name() == path {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if fi.Size() <= fs.MagicSize {
				return real(f) // no transaction yet (the open's own fsync)
			}
			// The last transaction's status byte, through its trailer:
			// the fsync must come after Finish wrote ' ' there.
			var b [8]byte
			if _, err := f.ReadAt(b[:], fi.Size()-8); err != nil {
				return err
			}
			var status [1]byte
			if _, err := f.ReadAt(status[:], fi.Size()-8-int64(binary.BigEndian.Uint64(b[:]))+16); err != nil {
				return err
			}
			if status[0] == ' ' {
				mu.Lock()
				synced = append(synced, fi.Size())
				mu.Unlock()
			}
		}
		return real(f)
	})
	s := stOpen(t, path, fs.Options{})
	for i := range 3 {
		stCommit(t, s, stWrite{zodb.Oid(i), 0, []byte("durable")})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		ok := len(synced) > 0 && synced[len(synced)-1] == fi.Size()
		n := len(synced)
		mu.Unlock()
		if !ok {
			t.Fatalf("commit %d acknowledged with Data.fs at %d bytes; its fsyncs so far (%d) covered %v", i, fi.Size(), n, synced)
		}
	}
}

// SyncRunning tells how long the commit fsync under way has been running:
// 0 before and after, growing while it does not return.
func TestSyncRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stCommit(t, s, stWrite{1, 0, []byte("a0")})
	if d := s.SyncRunning(); d != 0 {
		t.Fatalf("SyncRunning with no fsync under way: %v", d)
	}
	entered, release := heldFsync(s)
	defer release()
	tx := begin(t, s)
	if err := tx.Store(2, 0, []byte("b")); err != nil {
		t.Fatal(err)
	}
	done := finishAsync(t, tx)
	await(t, entered, "the fsync to start")
	first := s.SyncRunning()
	time.Sleep(20 * time.Millisecond)
	if d := s.SyncRunning(); first <= 0 || d < first+20*time.Millisecond {
		t.Fatalf("SyncRunning while the fsync is held: %v, then %v 20 ms later", first, d)
	}
	release()
	await(t, done, "the finish")
	if d := s.SyncRunning(); d != 0 {
		t.Fatalf("SyncRunning after the fsync returned: %v", d)
	}
}
