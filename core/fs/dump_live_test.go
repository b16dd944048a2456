package fs_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// onFirstWrite calls fn on the first Write (Dump's first bufio flush).
type onFirstWrite struct {
	fn   func()
	done bool
	buf  bytes.Buffer
}

func (w *onFirstWrite) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		w.fn()
	}
	return w.buf.Write(p)
}

// A dump of a live database, opened while a commit was between its vote
// (status 'c' on disk) and its finish, must stop with a warning and exit 0
// (docs/OPERATIONS.md), not call the finished commit damage.
func TestDumpOfALiveDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var last zodb.Tid
	for i := 0; i < 200; i++ {
		last = stCommit(t, s, stWrite{1, last, []byte("some data for the record")})
	}
	tx, err := s.Begin(bg, zodb.TxnMeta{Description: []byte("in progress")}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Store(1, last, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	w := &onFirstWrite{fn: func() {
		if _, err := tx.Finish(bg); err != nil {
			t.Errorf("finish: %v", err)
		}
	}}
	err = fs.Dump(context.Background(), w, path, fs.DumpOptions{Warn: &warn})
	if !strings.Contains(warn.String(), "stopped before the end of the file") {
		t.Errorf("no warning about the commit in progress: %q", warn.String())
	}
	if err != nil {
		t.Fatalf("dump of a live database whose commit finished during the dump: %v", err)
	}
}
