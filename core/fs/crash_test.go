package fs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Environment variables that make the test binary act as a child process.
const (
	crashChildEnv = "ZRS_FS_CRASH_CHILD" // commit forever (TestKillDuringCommits)
	lockHelperEnv = "ZRS_LOCK_HELPER"    // hold the lock until stdin closes (TestLockFileOtherProcess)
)

// TestMain lets tests re-execute this test binary as a child process.
func TestMain(m *testing.M) {
	child := map[string]func(string) error{crashChildEnv: crashChild, lockHelperEnv: lockHelper}
	for env, run := range child {
		if path := os.Getenv(env); path != "" {
			if err := run(path); err != nil {
				fmt.Fprintf(os.Stderr, "%s child: %v\n", env, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// lockHelper locks path, says "locked", and holds the lock until stdin
// closes.
func lockHelper(path string) error {
	l, err := fs.LockFileFor(path)
	if err != nil {
		return err
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until EOF
	return l.Close()
}

// crashChild commits transactions forever from several goroutines at once
// (so that kills land while commits share fsyncs, and while one writes
// behind another that waits for its fsync), printing each tid on stdout
// once Finish has returned, i.e. once the commit is acknowledged.
func crashChild(path string) error {
	ctx := context.Background()
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		return err
	}
	if _, _, err := s.Load(ctx, crashShared); errors.Is(err, zodb.ErrNotFound) {
		tx, err := s.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err == nil {
			err = tx.Store(crashShared, 0, []byte("shared"))
		}
		if err == nil {
			err = tx.Vote(ctx)
		}
		if err == nil {
			_, err = tx.Finish(ctx)
		}
		if err != nil {
			return err
		}
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	errs := make(chan error)
	for w := range 4 {
		go func() {
			for i := w; ; i += 4 {
				tid, oid, err := crashCommit(ctx, s, i)
				if err != nil {
					errs <- err
					return
				}
				if tid == 0 {
					continue // aborted on purpose
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %s\n", tid, oid)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	return <-errs
}

// crashShared is an object every fifth transaction also updates, so that
// updates conflict with (and build on) transactions still waiting for
// their fsync.
const crashShared = zodb.Oid(1 << 40)

// crashCommit commits transaction i: one new object of varied size, so a
// kill lands inside records of every length; every fifth also updates the
// shared object (retrying on conflicts), and every seventh is voted and
// then aborted instead (tid 0), which truncates behind committed ones.
func crashCommit(ctx context.Context, s *fs.FileStorage, i int) (zodb.Tid, zodb.Oid, error) {
	oid, err := s.NewOid(ctx)
	if err != nil {
		return 0, 0, err
	}
	for {
		_, shared, err := s.Load(ctx, crashShared)
		if err != nil {
			return 0, 0, err
		}
		tx, err := s.Begin(ctx, zodb.TxnMeta{Description: []byte(fmt.Sprintf("txn %d", i))}, zodb.BeginOptions{})
		if err != nil {
			return 0, 0, err
		}
		if err := tx.Store(oid, 0, []byte(strings.Repeat("x", 10+i%3000))); err != nil {
			return 0, 0, err
		}
		if i%5 == 0 {
			err := tx.Store(crashShared, shared, fmt.Appendf(nil, "shared %d", i))
			var ce *zodb.ConflictError
			if errors.As(err, &ce) {
				tx.Abort()
				continue
			}
			if err != nil {
				return 0, 0, err
			}
		}
		if err := tx.Vote(ctx); err != nil {
			return 0, 0, err
		}
		if i%7 == 3 {
			return 0, 0, tx.Abort()
		}
		tid, err := tx.Finish(ctx)
		return tid, oid, err
	}
}

// TestKillDuringCommits kills a committing process with SIGKILL at random
// moments, 20 times on the same file. After each kill the file must open
// read-write (recovery cuts at most the unacknowledged tail), pass Verify,
// and hold every transaction the child had acknowledged.
func TestKillDuringCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	rng := rand.New(rand.NewPCG(7, 11))
	acked := map[zodb.Tid]zodb.Oid{}
	for trial := range 20 {
		for tid, oid := range runAndKill(t, path, time.Duration(5+rng.IntN(60))*time.Millisecond) {
			acked[tid] = oid
		}
		checkAfterCrash(t, trial, path, acked)
	}
	if len(acked) < 20 {
		t.Fatalf("only %d transactions acknowledged in 20 runs", len(acked))
	}
}

// runAndKill starts the child, lets it commit for about d after its first
// acknowledgement, kills it with SIGKILL and returns what it acknowledged.
func runAndKill(t *testing.T, path string, d time.Duration) map[zodb.Tid]zodb.Oid {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	acked := map[zodb.Tid]zodb.Oid{}
	var deadline <-chan time.Time
	record := func(line string) {
		var tidHex, oidHex string
		if _, err := fmt.Sscan(line, &tidHex, &oidHex); err != nil {
			t.Fatalf("child said %q", line)
		}
		tid, _ := zodb.ParseTid(tidHex)
		oid, _ := zodb.ParseOid(oidHex)
		acked[tid] = oid
	}
	for deadline == nil || len(acked) == 0 {
		line, ok := <-lines
		if !ok {
			t.Fatal("child exited before acknowledging a commit")
		}
		record(line)
		deadline = time.After(d)
	}
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			record(line)
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			deadline = nil
		}
	}
	_ = cmd.Wait()
	return acked
}

// checkAfterCrash opens the killed file read-write, then checks it.
func checkAfterCrash(t *testing.T, trial int, path string, acked map[zodb.Tid]zodb.Oid) {
	t.Helper()
	ctx := context.Background()
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("trial %d: open after kill: %v", trial, err)
	}
	for tid, oid := range acked {
		if _, serial, err := s.Load(ctx, oid); err != nil || serial != tid {
			t.Fatalf("trial %d: acknowledged txn %s (oid %s) lost: serial %s, %v", trial, tid, oid, serial, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Verify(ctx, path, fs.VerifyOptions{}); err != nil {
		t.Fatalf("trial %d: verify after recovery: %v", trial, err)
	}
}
