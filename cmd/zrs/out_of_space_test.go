package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
	"golang.org/x/sys/unix"
)

// A secondary whose writes fail for lack of space (here a file size limit,
// RLIMIT_FSIZE, as a full disk or quota would) keeps its file sound — the
// transaction being voted is cut off — and retries with its back-off; once
// there is room again it catches up with the primary, byte for byte. (A
// failure after the vote, writing the status byte or in fsync, closes the
// storage and ends the daemon with exit status 1 instead; a size limit
// cannot provoke that one.)
func TestSecondaryOutOfSpaceRetriesAndCatchesUp(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "p.fs"), filepath.Join(dir, "s.fs")
	st, err := fs.Open(ppath, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 40 { // 2.6 MB
		txn, err := st.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oid, _ := st.NewOid(ctx)
		if err := txn.Store(oid, 0, bytes.Repeat([]byte("z"), 64<<10)); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	psock := filepath.Join(dir, "p.sock")
	p := startDaemon(t, bin, "primary", ppath, "--replicate-to", psock)
	defer p.stop(t)
	// ulimit -S -f counts 1024-byte blocks: 1 MiB, the soft limit only, so
	// that raising it again needs no privilege.
	s := launch(t, exec.Command("bash", "-c", `ulimit -S -f 1024 && exec "$0" secondary "$1" --replicate-from "$2"`, bin, spath, psock))
	defer s.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.stderr.String(), "file too large") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed write retried within 30 s\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-s.done:
		t.Fatalf("the secondary ended (%v) on a failed write; it should retry\n%s", err, s.stderr)
	default:
	}
	// The failed vote's bytes are cut off: between retries the file ends
	// with a whole transaction (a sample may catch a retry writing).
	var unsound error
	for range 50 {
		if _, unsound = fs.Verify(ctx, spath, fs.VerifyOptions{Strict: true}); unsound == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if unsound != nil {
		t.Fatalf("the secondary's file never ended with a whole transaction during the outage: %v", unsound)
	}
	// Room again: the soft limit back to the hard one, which the child
	// inherited from this process.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max != unix.RLIM_INFINITY && lim.Max < 8<<20 {
		t.Fatalf("this machine's hard file size limit (%d bytes) is below what the test replicates", lim.Max)
	}
	room := unix.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, &room, nil); err != nil {
		t.Fatal(err)
	}
	waitSameFile(t, ppath, spath, p, s)
}
