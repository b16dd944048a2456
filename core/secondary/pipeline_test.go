package secondary_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// slowDisk is a FileStorage whose Finish takes delay longer after the
// transaction is committed (a disk slower to confirm than this machine's),
// and counts the Finishes in progress at once. The Finish of failTid, or
// of the failAt-th transaction begun, commits, then fails, as a relay's
// does when its wait for its own secondaries fails.
type slowDisk struct {
	*fs.FileStorage
	delay   time.Duration
	failTid zodb.Tid
	failAt  int

	mu        sync.Mutex
	begun     int // transactions begun
	finished  int // Finishes returned
	finishing int
	most      int                   // most Finishes in progress at once
	committed map[zodb.Tid]struct{} // Finish committed it (and returned, or is sleeping)
	failed    bool
}

var errDownstream = errors.New("simulated: the relay's secondaries did not confirm")

func (d *slowDisk) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := d.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.begun++
	n := d.begun
	d.mu.Unlock()
	return &slowTxn{Txn: txn, d: d, n: n}, nil
}

type slowTxn struct {
	zodb.Txn
	d *slowDisk
	n int // its number among the transactions begun
}

func (t *slowTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	d := t.d
	d.mu.Lock()
	d.finishing++
	d.most = max(d.most, d.finishing)
	d.mu.Unlock()
	tid, err := t.Txn.Finish(ctx)
	d.mu.Lock()
	if err == nil {
		d.committed[tid] = struct{}{}
	}
	d.mu.Unlock()
	time.Sleep(d.delay)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.finishing--
	d.finished++
	if err == nil && (tid == d.failTid || t.n == d.failAt) && !d.failed {
		d.failed = true
		return tid, errDownstream
	}
	return tid, err
}

func (d *slowDisk) counts() (begun, finished int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.begun, d.finished
}

func (d *slowDisk) isCommitted(tid zodb.Tid) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.committed[tid]
	return ok
}

// A secondary catching up writes the next transactions while earlier ones
// wait for their fsync, and still reports each transaction (OnCommit, the
// commit watcher) once committed, one at a time, in tid order — also the
// one whose Finish failed after committing, after which it reconnects and
// goes on. The replica ends identical to the primary, over both protocols.
func TestApplyOverlapsFinishes(t *testing.T) {
	for _, proto := range []secondary.Protocol{secondary.ProtoZRS2, secondary.ProtoNative} {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
			p := startPrimary(t, ppath, "127.0.0.1:0")
			w := newWorkload(t, p)
			w.run(120)
			var tids []zodb.Tid
			it, err := p.Iterate(context.Background(), 0, zodb.MaxTid)
			if err != nil {
				t.Fatal(err)
			}
			for {
				info, err := it.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				tids = append(tids, info.Tid)
			}
			it.Close()

			d := &slowDisk{FileStorage: openFS(t, spath), delay: 2 * time.Millisecond,
				failTid: tids[len(tids)/2], committed: make(map[zodb.Tid]struct{})}
			var mu sync.Mutex
			var reported, watched []zodb.Tid
			var inReport int
			report := func(list *[]zodb.Tid) func(zodb.Tid, []zodb.Oid) {
				return func(tid zodb.Tid, _ []zodb.Oid) {
					mu.Lock()
					inReport++
					if inReport > 1 {
						t.Errorf("two reports at once (at %s)", tid)
					}
					mu.Unlock()
					if !d.isCommitted(tid) {
						t.Errorf("%s reported before its Finish committed it", tid)
					}
					mu.Lock()
					*list = append(*list, tid)
					inReport--
					mu.Unlock()
				}
			}
			s := startSecondaryOn(t, d, p.addr, secondary.Options{Protocol: proto, OnCommit: report(&reported)})
			s.WatchCommits(report(&watched))
			waitCaughtUp(t, p, s)
			s.close()
			p.close()

			if d.most < 2 {
				t.Errorf("at most %d Finish in progress at once: the next transaction waited for each fsync", d.most)
			}
			if !d.failed {
				t.Errorf("the Finish of %s never ran", d.failTid)
			}
			mu.Lock()
			defer mu.Unlock()
			// The watcher is set after Run starts: it may miss the first.
			if !slices.Equal(reported, tids) || len(watched) == 0 || !slices.Equal(watched, tids[len(tids)-len(watched):]) {
				t.Errorf("reported %d transactions, watched %d, of %d in order", len(reported), len(watched), len(tids))
			}
			sameFile(t, ppath, spath)
		})
	}
}

// Waiting (the caught-up indicator) is never true while a received
// transaction is not yet committed (its Finish not returned), and becomes
// true once the primary's last one is: at once over zrs2, by the next
// heartbeat over zrs3.
func TestWaitingOnlyWhenCommitted(t *testing.T) {
	for _, proto := range []secondary.Protocol{secondary.ProtoZRS2, secondary.ProtoNative} {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
			p := startPrimaryWith(t, ppath, "127.0.0.1:0", primary.Options{HeartbeatInterval: 50 * time.Millisecond})
			w := newWorkload(t, p)
			w.run(10)
			d := &slowDisk{FileStorage: openFS(t, spath), delay: 30 * time.Millisecond, committed: make(map[zodb.Tid]struct{})}
			s := startSecondaryOn(t, d, p.addr, secondary.Options{Protocol: proto})
			check := func(until func() bool) {
				t.Helper()
				deadline := time.Now().Add(converge)
				for {
					// The state that ends the wait is checked too: a
					// secondary wrongly caught up reaches it first.
					done := until()
					b1, f1 := d.counts()
					_, ok := s.Waiting()
					b2, f2 := d.counts()
					if ok && b1 == b2 && f1 == f2 && f1 < b1 {
						t.Fatalf("waiting (caught up) with %d of %d transactions begun not finished", b1-f1, b1)
					}
					if done {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("timed out at %s, primary at %s", s.LastTransaction(), p.LastTransaction())
					}
					time.Sleep(time.Millisecond)
				}
			}
			for round := range 3 {
				check(func() bool { _, ok := s.Waiting(); return ok && s.LastTransaction() == p.LastTransaction() })
				if round < 2 {
					w.run(10)
				}
			}
		})
	}
}

// gatedDisk is a FileStorage whose Finishes, once armed, wait at their
// start until the gate is opened, telling entered which tid waits.
type gatedDisk struct {
	*fs.FileStorage
	entered chan zodb.Tid

	mu   sync.Mutex
	gate chan struct{} // nil: not armed; guarded by mu
}

func (d *gatedDisk) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := d.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return &gatedTxn{Txn: txn, d: d}, nil
}

// arm makes the next Finishes wait until the returned gate is closed.
func (d *gatedDisk) arm() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gate = make(chan struct{})
	return d.gate
}

type gatedTxn struct {
	zodb.Txn
	d *gatedDisk
}

func (t *gatedTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	t.d.mu.Lock()
	gate := t.d.gate
	t.d.mu.Unlock()
	if gate != nil {
		t.d.entered <- t.Tid()
		<-gate
	}
	return t.Txn.Finish(ctx)
}

// inGoroutine reports whether some goroutine is running fn (a function
// name as stack traces print it).
func inGoroutine(fn string) bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte(fn))
}

// A zrs3 connection that ends while a transaction is finishing, after a
// heartbeat said nothing more was coming, waits for that Finish and then
// leaves the secondary not Waiting (caught up): it is disconnected, and
// whatever it reconnects to may be ahead. The Finish returning last must
// not mark it caught up once the connection is gone.
func TestNotWaitingAfterDisconnect(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimaryWith(t, ppath, "127.0.0.1:0", primary.Options{HeartbeatInterval: 10 * time.Millisecond})
	w := newWorkload(t, p)
	w.run(5)
	d := &gatedDisk{FileStorage: openFS(t, spath), entered: make(chan zodb.Tid, 1)}
	var mu sync.Mutex
	var conn net.Conn
	refuse := false
	dial := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return nil, errors.New("test: no more connections")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
		conn = c
		return c, err
	})
	s := startSecondaryOn(t, d, p.addr, secondary.Options{Protocol: secondary.ProtoNative, Dialer: dial})
	waitCaughtUp(t, p, s)

	gate := d.arm()
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // a failure before the gate opens must not leave the Finish waiting for ever
	tid, _ := w.create(1)
	if got := <-d.entered; got != tid {
		t.Fatalf("finishing %s, want %s", got, tid)
	}
	// Two heartbeats naming tid: the first one was handled (received all).
	heard, last := 0, s.NativeStatus().HeardAt
	waitFor(t, "heartbeats naming the last commit", func() bool {
		if ns := s.NativeStatus(); ns.PrimaryLast == tid && ns.HeardAt.After(last) {
			heard, last = heard+1, ns.HeardAt
		}
		return heard >= 2
	})
	if _, ok := s.Waiting(); ok {
		t.Fatal("waiting (caught up) while the last transaction is finishing")
	}
	mu.Lock()
	refuse = true
	conn.Close()
	mu.Unlock()
	waitFor(t, "the ended connection to wait for the Finish in progress", func() bool {
		return inGoroutine("secondary.(*applier).wait(")
	})
	open()
	waitFor(t, "the connection to end", func() bool { return !s.Status().Connected && s.LastTransaction() == tid })
	if since, ok := s.Waiting(); ok {
		t.Errorf("waiting (caught up since %v) after the connection ended", since)
	}
}

// A zrs3 acknowledgement names a transaction only once its Finish has
// returned (status written, fsynced): with a transaction's Finish held,
// the primary hears of the one before it, and of that one only after the
// Finish is let go.
func TestAckWaitsForFinish(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "primary.fs"), "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(10)
	d := &gatedDisk{FileStorage: openFS(t, filepath.Join(dir, "secondary.fs")), entered: make(chan zodb.Tid, 1)}
	acked := func() zodb.Tid {
		if ss := p.Status().Secondaries; len(ss) == 1 {
			return ss[0].Acked
		}
		return 0
	}
	s := startSecondaryOn(t, d, p.addr, secondary.Options{Protocol: secondary.ProtoNative})
	before := p.LastTransaction()
	waitFor(t, "the acknowledgement of the last commit", func() bool { return acked() == before })

	gate := d.arm()
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open)
	tid, _ := w.create(1)
	if got := <-d.entered; got != tid {
		t.Fatalf("finishing %s, want %s", got, tid)
	}
	// An acknowledgement goes out as soon as its transaction is reported:
	// one sent at the vote would have arrived by now.
	time.Sleep(200 * time.Millisecond)
	if got := acked(); got != before {
		t.Fatalf("with the Finish of %s held, the primary heard of %s", tid, got)
	}
	open()
	waitFor(t, "the acknowledgement of the released transaction", func() bool { return acked() == tid })
	s.close()
	p.close()
}
