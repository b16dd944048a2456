package secondary_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/faultproxy"
	"github.com/zrs-replication/zrs/internal/testutil"
)

func startProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	px, err := faultproxy.New(context.Background(), "127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

// Connections cut in the middle of transactions: a half-received
// transaction is never begun (a transaction is decoded whole before it is
// applied), the secondary resumes from its last commit, and the files end
// identical.
func TestCutConnectionsResume(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(100)
	px := startProxy(t, p.addr)
	px.CutAfter(faultproxy.ServerToClient, 3001) // every connection: a few transactions, then a cut
	s := startSecondary(t, spath, px.Addr(), secondary.Options{})
	waitFor(t, "three cuts", func() bool { return px.Stats().Cuts >= 3 })
	px.CutAfter(faultproxy.ServerToClient, -1)
	waitCaughtUp(t, p, s)
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// A bit flipped inside record data fails the stream checksum: nothing of
// that transaction is applied, and after reconnecting the secondary gets
// the true bytes.
func TestCorruptionIsNotApplied(t *testing.T) {
	// The offset lands in the raw record: a secondary on this host gets
	// the zrs3 stream uncompressed too.
	for _, proto := range []secondary.Protocol{secondary.ProtoZRS2, secondary.ProtoNative} {
		t.Run(string(proto), func(t *testing.T) { testCorruptionIsNotApplied(t, proto) })
	}
}

func testCorruptionIsNotApplied(t *testing.T, proto secondary.Protocol) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	w := newWorkload(t, p)
	w.commit(zodb.TxnMeta{}, func(txn zodb.Txn) error {
		oid, err := p.NewOid(context.Background())
		if err != nil {
			return err
		}
		return txn.Store(oid, 0, []byte("big"+strings.Repeat("z", 100<<10)))
	})
	w.run(20)
	px := startProxy(t, p.addr)
	const off = 50 << 10 // inside the first transaction's 100 KiB record
	if err := px.FlipBit(faultproxy.ServerToClient, off, 3); err != nil {
		t.Fatal(err)
	}
	s := startSecondary(t, spath, px.Addr(), secondary.Options{Protocol: proto})
	waitFor(t, "the corruption to be detected", func() bool { return s.Status().LastError != "" })
	if got := s.LastTransaction(); got != 0 {
		t.Fatalf("secondary applied up to %s from a corrupt stream", got)
	}
	if e := s.Status().LastError; !strings.Contains(strings.ToLower(e), "checksum") {
		t.Errorf("error %q does not mention the checksum", e)
	}
	if err := px.FlipBit(faultproxy.ServerToClient, off, 3); err != nil { // cancels it
		t.Fatal(err)
	}
	waitCaughtUp(t, p, s)
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// ReadTimeout (zrs2): a secondary whose primary keeps sending stays on
// one connection however long that lasts, and reconnects once the
// primary has sent nothing for the timeout.
func TestZRS2ReadTimeout(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(20)
	const timeout = 500 * time.Millisecond
	s := startSecondary(t, spath, p.addr, secondary.Options{Protocol: secondary.ProtoZRS2, ReadTimeout: timeout})
	waitCaughtUp(t, p, s)
	first := s.Status().ConnectedSince

	// A small commit every 50 ms for four timeouts: the stream is never
	// quiet, and its bytes alone would not stretch the deadline that far.
	oid := w.oids[0]
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); {
		w.ser[oid] = w.commit(zodb.TxnMeta{}, func(txn zodb.Txn) error { return txn.Store(oid, w.ser[oid], []byte("tick")) })
		time.Sleep(50 * time.Millisecond)
	}
	waitCaughtUp(t, p, s)
	if st := s.Status(); !st.Connected || !st.ConnectedSince.Equal(first) {
		t.Fatalf("reconnected while the primary was sending: %+v (first connected %v)", st, first)
	}

	// Quiet for longer than the timeout: a new connection.
	waitFor(t, "a reconnection after a quiet period", func() bool {
		st := s.Status()
		return st.Connected && st.ConnectedSince.After(first)
	})
	w.run(10)
	waitCaughtUp(t, p, s)
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// failingRestore is a FileStorage whose restore number failAt fails (a
// full disk, say), in the middle of a replicated transaction.
type failingRestore struct {
	*fs.FileStorage
	restores, failAt atomic.Int64
	failed           atomic.Pointer[zodb.Txn] // the transaction whose restore failed
}

func (f *failingRestore) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := f.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return failingRestoreTxn{txn, f}, nil
}

type failingRestoreTxn struct {
	zodb.Txn
	f *failingRestore
}

var errSimulatedWrite = errors.New("simulated write failure")

func (t failingRestoreTxn) Restore(oid zodb.Oid, serial zodb.Tid, data []byte, dataTxn zodb.Tid) error {
	if t.f.restores.Add(1) == t.f.failAt.Load() {
		t.f.failed.Store(&t.Txn)
		return errSimulatedWrite
	}
	return t.Txn.Restore(oid, serial, data, dataTxn)
}

// A replicated transaction that fails while it is applied (a restore
// fails) is aborted: nothing of it stays, the storage's commit lock is
// free, and after reconnecting the secondary applies it again and ends
// identical to the primary.
func TestFailedApplyIsAborted(t *testing.T) {
	for _, proto := range []secondary.Protocol{secondary.ProtoZRS2, secondary.ProtoNative} {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
			p := startPrimary(t, ppath, "127.0.0.1:0")
			newWorkload(t, p).run(30)
			st := &failingRestore{FileStorage: openFS(t, spath)}
			st.failAt.Store(25) // inside a transaction with several records
			s := startSecondaryOn(t, st, p.addr, secondary.Options{Protocol: proto})
			// Should the secondary not abort it, the failed transaction
			// keeps the commit lock and replication waits for ever: the
			// wait below fails, and this releases the lock so that the
			// secondary can be closed (an abort again is a no-op).
			t.Cleanup(func() {
				if txn := st.failed.Load(); txn != nil {
					(*txn).Abort()
				}
			})
			waitCaughtUp(t, p, s)
			if e := s.Status().LastError; !strings.Contains(e, errSimulatedWrite.Error()) {
				t.Fatalf("last error %q: the restore did not fail", e)
			}
			s.close()
			p.close()
			sameFile(t, ppath, spath)
		})
	}
}

// failingFinish is a FileStorage whose commit number failAt fails the way
// a failed fsync does: the storage closes itself and Finish returns the
// error.
type failingFinish struct {
	*fs.FileStorage
	failAt int
	begun  atomic.Int32 // read by the test while Run goes on
}

func (f *failingFinish) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := f.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	if int(f.begun.Add(1)) == f.failAt {
		return &failingTxn{Txn: txn, st: f.FileStorage}, nil
	}
	return txn, nil
}

type failingTxn struct {
	zodb.Txn
	st *fs.FileStorage
}

var errSimulatedFsync = errors.New("simulated fsync failure")

func (t *failingTxn) Finish(ctx context.Context) (zodb.Tid, error) {
	t.Txn.Abort()
	t.st.Close()
	return 0, errSimulatedFsync
}

// A storage that closed itself after a failed write or fsync cannot be
// written again until it is reopened (which recovers the file): Run stops
// with an error saying so, so that the service manager restarts the node,
// instead of reconnecting forever to a storage that refuses everything.
// When the failed fsync is the last transaction's, the primary has
// nothing more to send: Run must stop then too, not when the primary next
// commits.
func TestRunStopsWhenTheStorageClosesItself(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "primary.fs"), "127.0.0.1:0")
	const committed = 10
	newWorkload(t, p).run(committed)
	for name, proto := range map[string]secondary.Protocol{"zrs2": secondary.ProtoZRS2, "zrs3": secondary.ProtoAuto} {
		for _, failAt := range []int{5, committed} {
			t.Run(fmt.Sprintf("%s/fail-at-%d", name, failAt), func(t *testing.T) {
				st := &failingFinish{FileStorage: openFS(t, filepath.Join(t.TempDir(), "secondary.fs")), failAt: failAt}
				logs := &testutil.SyncBuffer{} // shown if Run does not stop
				s := secondary.New(st, p.addr, secondary.Options{Protocol: proto,
					Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
					MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
				done := make(chan error, 1)
				go func() { done <- s.Run(context.Background()) }()
				select {
				case err := <-done:
					if !errors.Is(err, zodb.ErrClosed) || !strings.Contains(err.Error(), "restart") {
						t.Fatalf("Run: %v; want an error wrapping ErrClosed that says to restart", err)
					}
					if begun := st.begun.Load(); begun < int32(failAt) {
						t.Fatalf("Run stopped after %d transactions begun; the failure was planted in number %d", begun, failAt)
					}
				case <-time.After(converge):
					status := s.Status()
					s.Close()
					<-done
					t.Fatalf("Run still going %v after the storage closed itself (%d transactions begun): %+v\nsecondary's log:\n%s", converge, st.begun.Load(), status, logs)
				}
				s.Close()
			})
		}
	}
}
