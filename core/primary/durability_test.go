package primary_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

const converge = 30 * time.Second

func openFS(t *testing.T, path string) *fs.FileStorage {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func startPrimary(t *testing.T, path string, d primary.Durability) (*primary.Primary, string) {
	t.Helper()
	p := primary.New(openFS(t, path), primary.Options{Durability: d, HeartbeatInterval: 50 * time.Millisecond})
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background())
	t.Cleanup(func() { p.Close() })
	return p, a.String()
}

func startSecondary(t *testing.T, path, addr string) *secondary.Secondary {
	t.Helper()
	return startSecondaryOn(t, openFS(t, path), addr)
}

// startSecondaryOn is startSecondary replicating into st.
func startSecondaryOn(t *testing.T, st secondary.Storage, addr string) *secondary.Secondary {
	t.Helper()
	s := secondary.New(st, addr, secondary.Options{Protocol: secondary.ProtoNative,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s
}

func commit(ctx context.Context, st zodb.Storage, i int) (zodb.Tid, error) {
	txn, err := st.Begin(ctx, zodb.TxnMeta{Description: fmt.Appendf(nil, "txn %d", i)}, zodb.BeginOptions{})
	if err != nil {
		return 0, err
	}
	oid, err := st.NewOid(ctx)
	if err == nil {
		err = txn.Store(oid, 0, fmt.Appendf(nil, "data %d %0*d", i, i%500, 0))
	}
	if err == nil {
		err = txn.Vote(ctx)
	}
	if err != nil {
		txn.Abort()
		return 0, err
	}
	return txn.Finish(ctx)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// slowApply is a secondary's FileStorage on a slow disk: each replicated
// transaction takes delay to finish, so it is acknowledged well after it
// was received.
type slowApply struct {
	*fs.FileStorage
	delay time.Duration
}

func (s slowApply) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	txn, err := s.FileStorage.Begin(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return slowFinish{txn, s.delay}, nil
}

type slowFinish struct {
	zodb.Txn
	delay time.Duration
}

func (t slowFinish) Finish(ctx context.Context) (zodb.Tid, error) {
	time.Sleep(t.delay)
	return t.Txn.Finish(ctx)
}

// In sync mode every commit returns only once the secondary has
// acknowledged it (applied and fsynced, here slowly), not once it was
// sent.
func TestSyncCommitWaitsForAck(t *testing.T) {
	dir := t.TempDir()
	p, addr := startPrimary(t, filepath.Join(dir, "p.fs"), primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: converge})
	s := startSecondaryOn(t, slowApply{openFS(t, filepath.Join(dir, "s.fs")), 20 * time.Millisecond}, addr)
	waitFor(t, "a connected secondary", func() bool { return len(p.Status().Secondaries) == 1 })
	// Two committers: one's acknowledgement wakes the other's wait while
	// the secondary, having received the other's commit, still applies it.
	errs := make(chan error, 2)
	for c := range 2 {
		go func() {
			for i := range 15 {
				tid, err := commit(context.Background(), p, 100*c+i)
				if err != nil {
					errs <- err
					return
				}
				if got := s.LastTransaction(); got < tid {
					errs <- fmt.Errorf("commit %s returned before the secondary had it (secondary at %s)", tid, got)
					return
				}
				if ss := p.Status().Secondaries; ss[0].Acked < tid {
					errs <- fmt.Errorf("status acked %s < %s", ss[0].Acked, tid)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Without secondaries, a sync commit fails with ErrNotReplicated after
// the timeout (committed on the primary all the same); with Degrade it
// succeeds, the primary degrades, and recovers once a secondary caught up.
func TestSyncTimeout(t *testing.T) {
	dir := t.TempDir()
	const timeout = 100 * time.Millisecond
	p, _ := startPrimary(t, filepath.Join(dir, "p.fs"), primary.Durability{Mode: primary.Sync, Timeout: timeout})
	t0 := time.Now()
	tid, err := commit(context.Background(), p, 1)
	if !errors.Is(err, primary.ErrNotReplicated) || time.Since(t0) < timeout || tid == 0 || p.LastTransaction() != tid {
		t.Fatalf("fail mode: tid %s, err %v after %v; last %s", tid, err, time.Since(t0), p.LastTransaction())
	}

	// Degraded, a commit does not wait for the timeout: one second here,
	// which no commit takes otherwise, however loaded the machine.
	const degradeTimeout = time.Second
	p2, addr := startPrimary(t, filepath.Join(dir, "p2.fs"), primary.Durability{Mode: primary.Sync, Timeout: degradeTimeout, OnTimeout: primary.Degrade})
	if _, err := commit(context.Background(), p2, 1); err != nil || !p2.Degraded() {
		t.Fatalf("degrade mode: %v, degraded %v", err, p2.Degraded())
	}
	t0 = time.Now()
	if _, err := commit(context.Background(), p2, 2); err != nil || time.Since(t0) >= degradeTimeout {
		t.Fatalf("degraded commit: %v after %v (should not wait for the sync timeout)", err, time.Since(t0))
	}
	s := startSecondary(t, filepath.Join(dir, "s.fs"), addr)
	waitFor(t, "the secondary to catch up", func() bool { return s.LastTransaction() == p2.LastTransaction() })
	waitFor(t, "its acknowledgement", func() bool {
		ss := p2.Status().Secondaries
		return len(ss) == 1 && ss[0].Acked == p2.LastTransaction()
	})
	tid, err = commit(context.Background(), p2, 3)
	if err != nil || p2.Degraded() || s.LastTransaction() < tid {
		t.Fatalf("after recovery: %v, degraded %v, secondary at %s for %s", err, p2.Degraded(), s.LastTransaction(), tid)
	}
}

// killChildEnv makes the test binary a sync-mode primary that commits in
// a loop and prints each tid once Finish returned.
const killChildEnv = "ZRS_PRIMARY_SYNC_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(killChildEnv); v != "" {
		if err := syncChild(v); err != nil {
			fmt.Fprintln(os.Stderr, "sync child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncChild runs a primary on "path|addr" in sync mode ANY 1 and commits
// forever, printing each acknowledged tid.
func syncChild(arg string) error {
	var path, addr string
	for i := range len(arg) {
		if arg[i] == '|' {
			path, addr = arg[:i], arg[i+1:]
		}
	}
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		return err
	}
	p := primary.New(st, primary.Options{Durability: primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: time.Minute}})
	ctx := context.Background()
	if _, err := p.Listen(ctx, addr); err != nil {
		return err
	}
	go p.Serve(ctx)
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		tid, err := commit(ctx, p, i)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, tid)
		out.Flush()
	}
}

// Acceptance: in sync mode with ANY 1, a primary killed with SIGKILL
// right after a commit was acknowledged has that commit on its secondary,
// every time (50 trials, the same files throughout).
func TestSyncKillPrimary(t *testing.T) {
	dir := t.TempDir()
	ppath, sock := filepath.Join(dir, "p.fs"), filepath.Join(dir, "p.sock")
	s := startSecondary(t, filepath.Join(dir, "s.fs"), sock)
	rng := rand.New(rand.NewPCG(3, 5))
	total := 0
	for trial := range 50 {
		acked := runSyncChild(t, ppath, sock, 1+rng.IntN(20))
		total += len(acked)
		last := s.LastTransaction()
		for _, tid := range acked {
			if tid > last {
				t.Fatalf("trial %d: acknowledged %s is not on the secondary (its last is %s)", trial, tid, last)
			}
		}
		os.Remove(sock)
	}
	// Every acknowledged transaction is in the secondary's file, which is
	// a prefix of the primary's.
	checkPrefix(t, s, ppath)
	t.Logf("%d acknowledged commits over 50 kills", total)
}

// runSyncChild starts the child primary, waits for n acknowledged
// commits, kills it at once with SIGKILL and returns the tids.
func runSyncChild(t *testing.T, path, sock string, n int) []zodb.Tid {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path+"|"+sock)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var tids []zodb.Tid
	for len(tids) < n && sc.Scan() {
		tid, err := zodb.ParseTid(sc.Text())
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		tids = append(tids, tid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(tids) < n {
		t.Fatalf("child acknowledged %d commits, want %d", len(tids), n)
	}
	return tids
}

func checkPrefix(t *testing.T, s *secondary.Secondary, ppath string) {
	t.Helper()
	ctx := context.Background()
	pst, err := fs.Open(ppath, fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pst.Close()
	pit, err := pst.Iterate(ctx, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer pit.Close()
	sit, err := s.Iterate(ctx, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer sit.Close()
	for {
		si, err := sit.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading the secondary's file: %v", err)
		}
		pi, err := pit.Next(ctx)
		if err != nil || pi.Tid != si.Tid || len(pi.Records) != len(si.Records) {
			t.Fatalf("secondary transaction %s is not the primary's next (%v)", si.Tid, err)
		}
	}
}

// votedRoot begins a transaction on p storing the root, and votes it.
func votedRoot(t *testing.T, p *primary.Primary) zodb.Txn {
	t.Helper()
	ctx := context.Background()
	txn, err := p.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(0, 0, []byte("root")); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	return txn
}

// A primary's transaction finishes in two parts (zodb.SplitFinisher) so
// that a ZEO server waits for the secondaries off the client's
// connection: with async durability there is nothing to wait for (nil,
// and the server answers at once, as before); with sync the wait gives
// what Finish would have (here, ErrNotReplicated: no secondary), and the
// commit is durable and visible before it.
func TestFinishDurableSplitsTheSyncWait(t *testing.T) {
	ctx := context.Background()
	for _, d := range []primary.Durability{{}, {Mode: primary.Sync, Quorum: 1, Timeout: 50 * time.Millisecond}} {
		p, _ := startPrimary(t, filepath.Join(t.TempDir(), "p.fs"), d)
		txn := votedRoot(t, p)
		tid, wait, err := txn.(zodb.SplitFinisher).FinishDurable(ctx)
		if err != nil || tid == 0 || p.LastTransaction() != tid {
			t.Fatalf("%v: FinishDurable: %s %v (last %s)", d.Mode, tid, err, p.LastTransaction())
		}
		if d.Mode != primary.Sync {
			if wait != nil {
				t.Fatal("async durability returns a wait")
			}
			continue
		}
		if wait == nil {
			t.Fatal("sync durability returns no wait")
		}
		if err := wait(ctx); !errors.Is(err, primary.ErrNotReplicated) {
			t.Fatalf("sync wait with no secondary: %v, want ErrNotReplicated", err)
		}
	}

	// The wait is not in FinishDurable: with a timeout that no commit
	// reaches, FinishDurable returns at once, and the wait gives up with
	// its caller.
	p, _ := startPrimary(t, filepath.Join(t.TempDir(), "p.fs"), primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: converge})
	txn := votedRoot(t, p)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t0 := time.Now()
	tid, wait, err := txn.(zodb.SplitFinisher).FinishDurable(fctx)
	if took := time.Since(t0); err != nil || took >= 5*time.Second {
		t.Fatalf("FinishDurable: %s %v after %v: it waited for the secondaries", tid, err, took.Round(time.Millisecond))
	}
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer wcancel()
	if err := wait(wctx); !errors.Is(err, primary.ErrNotReplicated) || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("the wait, given up by its caller: %v", err)
	}
}

// Commits that time out together degrade sync replication once: one
// error in the log, not one per commit.
func TestConcurrentTimeoutsDegradeOnce(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	d := primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: 300 * time.Millisecond, OnTimeout: primary.Degrade}
	p := primary.New(openFS(t, filepath.Join(t.TempDir(), "p.fs")), primary.Options{Durability: d,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer p.Close()
	ctx := context.Background()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := commit(ctx, p, i)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "SYNC REPLICATION DEGRADED"); n != 1 {
		t.Fatalf("%d degradations logged for 4 commits timing out together:\n%s", n, logs)
	}
	if !p.Degraded() {
		t.Fatal("not degraded")
	}
}
