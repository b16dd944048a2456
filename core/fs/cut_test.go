package fs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

var errCut = errors.New("simulated truncate error")

// A transaction written at vote and then abandoned must be cut off before
// the next one is written where it started: otherwise the rest of it
// follows the next, shorter transaction as garbage. When the cut fails
// (after a failed vote write, or at an abort) the storage closes itself,
// as after a failed finish, and the next open cuts what was left.
func TestFailedCutClosesTheStorage(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s *fs.FileStorage, t0 zodb.Tid) error // ends the transaction, returns the error that closed the storage
	}{
		{"vote write fails", func(t *testing.T, s *fs.FileStorage, t0 zodb.Tid) error {
			// The vote's write stops half way, as a full disk stops it.
			fs.SetWriteAt(s, func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
				if len(p) > 1000 {
					n, _ := real(p[:len(p)/2], off)
					return n, errDisk
				}
				return real(p, off)
			})
			tx := begin(t, s)
			if err := tx.Store(1, t0, bytes.Repeat([]byte("x"), 4000)); err != nil {
				t.Fatal(err)
			}
			err := tx.Vote(bg)
			if !errors.Is(err, errDisk) || !errors.Is(err, errCut) {
				t.Fatalf("vote: %v; want the write error and the cut's", err)
			}
			if aerr := tx.Abort(); aerr != nil {
				t.Fatalf("abort after the failed vote: %v", aerr)
			}
			return err
		}},
		{"abort after vote", func(t *testing.T, s *fs.FileStorage, t0 zodb.Tid) error {
			tx := begin(t, s)
			if err := tx.Store(1, t0, bytes.Repeat([]byte("x"), 4000)); err != nil {
				t.Fatal(err)
			}
			if err := tx.Vote(bg); err != nil {
				t.Fatal(err)
			}
			err := tx.Abort()
			if !errors.Is(err, errCut) {
				t.Fatalf("abort: %v; want the cut's error", err)
			}
			if again := tx.Abort(); again != nil {
				t.Fatalf("second abort: %v", again)
			}
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			s := stOpen(t, path, fs.Options{})
			defer s.Close()
			t0 := stCommit(t, s, stWrite{1, 0, []byte("a0")})
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			fs.SetCut(s, func(func(int64) error, int64) error { return errCut })
			c.run(t, s, t0)
			select {
			case <-s.Failed():
			default:
				t.Fatal("the storage goes on after a transaction it could not cut")
			}
			if _, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrClosed) {
				t.Fatalf("begin after the failed cut: %v; want ErrClosed", err)
			}
			if err := s.Close(); !errors.Is(err, errCut) {
				t.Fatalf("close: %v; want the cut's error", err)
			}
			s2 := stOpen(t, path, fs.Options{})
			defer s2.Close()
			if last := s2.LastTransaction(); last != t0 {
				t.Fatalf("last transaction after reopen %s, want %s", last, t0)
			}
			if after, err := os.Stat(path); err != nil || after.Size() != st.Size() {
				t.Fatalf("Data.fs after reopen: %v, %v; want %d bytes", after, err, st.Size())
			}
			stCommit(t, s2, stWrite{2, 0, []byte("b")})
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Verify(bg, path, fs.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// closeDuringFailingVote has a vote fail half way through its write and
// fail to cut itself, and calls Close while the write is under way; it
// returns the vote's and Close's results. midway runs while Close waits
// in the abort of the voting transaction, before the write fails.
func closeDuringFailingVote(t *testing.T, s *fs.FileStorage, t0 zodb.Tid, midway func()) (voted, closed <-chan error) {
	t.Helper()
	writing, release := make(chan struct{}), make(chan struct{})
	fs.SetWriteAt(s, func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
		if len(p) > 1000 {
			close(writing)
			<-release
			n, _ := real(p[:len(p)/2], off)
			return n, errDisk
		}
		return real(p, off)
	})
	fs.SetCut(s, func(func(int64) error, int64) error { return errCut })
	tx := begin(t, s)
	if err := tx.Store(1, t0, bytes.Repeat([]byte("x"), 4000)); err != nil {
		t.Fatal(err)
	}
	v, c := make(chan error, 1), make(chan error, 1)
	go func() { v <- tx.Vote(bg) }()
	<-writing
	go func() { c <- s.Close() }()
	time.Sleep(20 * time.Millisecond) // let Close reach the abort of the voting transaction
	midway()
	close(release)
	return v, c
}

// Close while a vote is writing, and the vote fails and cannot cut
// itself: the storage closed itself for that, so Close returns that
// failure (the daemon must not exit 0), and it writes no index once the
// lock is released.
func TestCloseDuringAFailedCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	t0 := stCommit(t, s, stWrite{1, 0, []byte("a0")})
	voted, closed := closeDuringFailingVote(t, s, t0, func() {
		if err := os.Remove(path + ".index"); err != nil {
			t.Fatal(err)
		}
	})
	if err := <-voted; !errors.Is(err, errCut) {
		t.Fatalf("vote: %v", err)
	}
	if err := <-closed; !errors.Is(err, errCut) {
		t.Fatalf("close: %v; want the failed cut", err)
	}
	if _, err := os.Stat(path + ".index"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an index was written after the storage closed itself: %v", err)
	}
}

// blockingHandler holds the storage's Error record (failClose logs before
// it takes syncMu) until release is closed: the scheduler delaying the
// voting goroutine between t.mu.Unlock and failClose's syncMu.Lock.
type blockingHandler struct {
	slog.Handler
	release chan struct{}
}

func (h blockingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && strings.Contains(r.Message, "could not be cut") {
		select {
		case <-h.release:
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}

func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }

// As TestCloseDuringAFailedCut, with the voting goroutine slow to record
// its failure (its error log is held): Close still returns it.
func TestCloseDuringAFailedCutSlowFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	release := make(chan struct{})
	s := stOpen(t, path, fs.Options{Logger: slog.New(blockingHandler{slog.DiscardHandler, release})})
	t0 := stCommit(t, s, stWrite{1, 0, []byte("a0")})
	voted, closed := closeDuringFailingVote(t, s, t0, func() {})
	go func() {
		time.Sleep(50 * time.Millisecond) // Close must still be waiting then
		close(release)
	}()
	cerr := <-closed
	if err := <-voted; !errors.Is(err, errCut) {
		t.Fatalf("vote: %v", err)
	}
	select {
	case <-s.Failed():
	case <-time.After(time.Second):
		t.Fatal("the storage did not close itself")
	}
	if !errors.Is(cerr, errCut) {
		t.Fatalf("close: %v; want the failed cut (the storage closed itself: Failed() is closed)", cerr)
	}
}
