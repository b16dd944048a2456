package fs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// FuzzOpen feeds fs.Open a Data.fs and, maybe, a Data.fs.index: the
// open-time scan and recovery, the saved index's sanity check (where a
// crafted index meets a crafted file), and the loads, history and undo
// log that follow the positions they produced. Errors are expected;
// panics and hangs are not.
func FuzzOpen(f *testing.F) {
	py, err := os.ReadFile("testdata/pydump.fs")
	if err != nil {
		f.Fatal(err)
	}
	synth := synthBuild(synthHistory(6)).Bytes
	for _, b := range [][]byte{py, synth} {
		// The index zrs saves for b on close, as a seed of its own.
		path := filepath.Join(f.TempDir(), "Data.fs")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			f.Fatal(err)
		}
		s, err := fs.Open(path, fs.Options{})
		if err != nil {
			f.Fatal(err)
		}
		if err := s.Close(); err != nil {
			f.Fatal(err)
		}
		index, err := os.ReadFile(path + ".index")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil), false)
		f.Add(b, index, true)
	}
	f.Fuzz(func(t *testing.T, b, index []byte, rw bool) {
		if len(b) > 1<<16 || len(index) > 1<<16 {
			return
		}
		path := filepath.Join(t.TempDir(), "Data.fs")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if index != nil {
			if err := os.WriteFile(path+".index", index, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := fs.Open(path, fs.Options{ReadOnly: !rw})
		if err != nil {
			return
		}
		defer s.Close()
		ctx := context.Background()
		for _, oid := range s.Oids() {
			s.Load(ctx, oid)
			s.LoadBefore(ctx, oid, zodb.MaxTid)
			s.History(ctx, oid, 10)
		}
		s.UndoLog(ctx, 0, 20, nil)
	})
}
