package fs_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// FuzzIterate feeds arbitrary bytes to the iterator as a Data.fs: it may
// return errors but must never panic or loop forever.
func FuzzIterate(f *testing.F) {
	f.Add(synthBuild(synthHistory(12)).Bytes, uint64(0))
	f.Add(synthBuild(synthHistory(3)).Bytes, uint64(synthTid(2)))
	f.Add([]byte("FS30"), uint64(0))
	py, err := os.ReadFile("testdata/pydump.fs") // the Python-written seed
	if err != nil {
		f.Fatal(err)
	}
	f.Add(py, uint64(0))
	f.Add(py, uint64(0x040d41248f847d88))
	f.Fuzz(func(t *testing.T, b []byte, start uint64) {
		m := fs.NewTxnMap()
		m.Add(zodb.Tid(start/2), int64(len(b)/2))
		for _, mm := range []*fs.TxnMap{nil, m} {
			it, err := fs.NewFileIterator(bytes.NewReader(b), "fuzz", int64(len(b)), zodb.Tid(start), zodb.MaxTid, mm)
			if err != nil {
				continue
			}
			// A transaction takes at least a header and a trailer: more
			// than len(b)/31 of them means the iterator does not advance.
			ended := false
			for n := 0; n <= len(b)/(fs.TxnHeaderSize+8)+1; n++ {
				if _, err := it.Next(context.Background()); err != nil {
					ended = true
					break
				}
			}
			it.Close()
			if !ended {
				t.Fatalf("the iterator gave more transactions than %d bytes can hold", len(b))
			}
		}
	})
}
