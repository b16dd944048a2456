package fs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// damagedMiddle writes 6 transactions, closes the storage (saving its
// index, so that a later open does not scan past the damage), damages
// transaction #2 with patch and returns the path and the tids.
func damagedMiddle(t *testing.T, patch func(b []byte, pos int64)) (string, []zodb.Tid) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	for i := range 6 {
		stCommit(t, s, stWrite{zodb.Oid(i), 0, bytes.Repeat([]byte{'x'}, 40)})
	}
	it, err := s.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := iterAll(t, it)
	if err != nil || len(infos) != 6 {
		t.Fatalf("%d transactions, %v", len(infos), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var tids []zodb.Tid
	for _, in := range infos {
		tids = append(tids, in.Tid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(b, infos[2].Pos)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, tids
}

// Inside a storage's committed data a transaction that runs past the end
// or still says 'c' is damage: iterating over it is an error naming its
// offset, not a quiet end — which a primary would take for "caught up",
// leaving every secondary behind it stalled without a word. A tool's
// iterator over the file (fs dump) stops there as Python's does: after a
// 'c', which a commit in progress shows too, with a warning; after a
// finished transaction cut short, which nothing but damage leaves, with
// an error (exit 1), once the transactions before it are printed.
func TestIterateReportsDamageInsideCommittedData(t *testing.T) {
	for _, c := range []struct {
		name    string
		patch   func(b []byte, pos int64)
		want    string
		dumpErr bool
	}{
		{"length", func(b []byte, pos int64) {
			binary.BigEndian.PutUint64(b[pos+8:], binary.BigEndian.Uint64(b[pos+8:])+1<<32)
		}, "transaction length", true},
		{"status c", func(b []byte, pos int64) { b[pos+16] = 'c' }, "status 'c'", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, tids := damagedMiddle(t, c.patch)
			s := stOpen(t, path, fs.Options{})
			for _, start := range []zodb.Tid{0, tids[1] + 1} {
				it, err := s.Iterate(bg, start, zodb.MaxTid)
				if err != nil {
					t.Fatal(err)
				}
				got, err := iterAll(t, it)
				var re *fs.RecordError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Iterate(%s): %d transactions, then %v; want a RecordError about the %s", start, len(got), err, c.name)
				}
			}
			var out, warn bytes.Buffer
			err := fs.Dump(context.Background(), &out, path, fs.DumpOptions{JSON: true, Warn: &warn})
			if n := bytes.Count(out.Bytes(), []byte("\n")); n != 2 {
				t.Errorf("dump: %d lines; want the 2 transactions before the damage", n)
			}
			if c.dumpErr {
				var re *fs.RecordError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), "not an unfinished commit: damage") {
					t.Errorf("dump: %v; want an error calling it damage", err)
				}
			} else if err != nil || !strings.Contains(warn.String(), "stopped before the end of the file") {
				t.Errorf("dump: %v, warning %q; want a warning", err, warn.String())
			}
		})
	}
}

// A commit in progress at the end of a live file is no damage: a tool's
// iterator stops before it and Unfinished names it; the storage's own
// iterator does not reach it.
func TestIterateStopsBeforeCommitInProgress(t *testing.T) {
	path, s := voteInProgress(t)
	it, err := s.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := iterAll(t, it); err != nil || len(got) != 3 {
		t.Errorf("storage iterator during a vote: %d transactions, %v; want 3", len(got), err)
	}
	fit, err := fs.OpenFileIterator(path, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer fit.Close()
	n := 0
	for {
		_, err := fit.Next(bg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if u := fit.Unfinished(); n != 3 || u == nil || !strings.Contains(u.Error(), "status 'c'") {
		t.Errorf("file iterator during a vote: %d transactions, Unfinished %v; want 3 and the voted one", n, u)
	}
}

// voteInProgress opens a storage at a fresh path with 3 transactions,
// and a fourth voted and not finished (aborted at the test's end): what a
// live file looks like between a ZEO client's vote and tpc_finish.
func voteInProgress(t *testing.T) (string, *fs.FileStorage) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	for i := range 3 {
		stCommit(t, s, stWrite{zodb.Oid(i), 0, []byte("data")})
	}
	tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Abort() })
	if err := tx.Store(7, 0, []byte("in vote")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	return path, s
}

// fs dump of an empty file is an error, as verify's is: no transactions
// printed and exit 0 would read as an empty database.
func TestDumpEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := fs.Dump(context.Background(), &out, path, fs.DumpOptions{})
	var re *fs.RecordError
	if !errors.As(err, &re) || re.Pos != 0 || !strings.Contains(err.Error(), "empty file (0 bytes)") || out.Len() != 0 {
		t.Fatalf("dump of an empty file: %v, %q", err, out.String())
	}
}

// verify and dump refuse what is not a regular file before opening it: a
// named pipe would block them until a writer came.
func TestVerifyAndDumpRefuseNonFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{fifo: "not a regular file (a named pipe)", dir: "is a directory: give the Data.fs file in it"} {
		done := make(chan [2]error, 1)
		go func() {
			_, verr := fs.Verify(context.Background(), path, fs.VerifyOptions{})
			derr := fs.Dump(context.Background(), io.Discard, path, fs.DumpOptions{})
			done <- [2]error{verr, derr}
		}()
		select {
		case errs := <-done:
			for i, err := range errs {
				if err == nil || !strings.Contains(err.Error(), path+": "+want) {
					t.Errorf("%s (%s): %v; want %q", path, [2]string{"verify", "dump"}[i], err, want)
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: verify or dump still blocked after 30 s", path)
		}
	}
}
