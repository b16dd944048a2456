package fs_test

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// benchDB commits txns transactions of perTxn 100-byte objects each.
func benchDB(b *testing.B, txns, perTxn int) (*fs.FileStorage, []zodb.Oid) {
	b.Helper()
	s := stOpen(b, filepath.Join(b.TempDir(), "Data.fs"), fs.Options{})
	data := make([]byte, 100)
	var oids []zodb.Oid
	for range txns {
		tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for range perTxn {
			oid, _ := s.NewOid(bg)
			tx.Store(oid, 0, data)
			oids = append(oids, oid)
		}
		tx.Vote(bg)
		if _, err := tx.Finish(bg); err != nil {
			b.Fatal(err)
		}
	}
	return s, oids
}

func BenchmarkLoad(b *testing.B) {
	s, oids := benchDB(b, 100, 100)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, _, err := s.Load(bg, oids[i%len(oids)]); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

func BenchmarkLoadParallel(b *testing.B) {
	s, oids := benchDB(b, 100, 100)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, err := s.Load(bg, oids[i%len(oids)]); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
}

// BenchmarkCommit commits one 100-byte object per transaction, fsynced.
func BenchmarkCommit(b *testing.B) {
	s, _ := benchDB(b, 1, 1)
	data := make([]byte, 100)
	for b.Loop() {
		oid, _ := s.NewOid(bg)
		tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			b.Fatal(err)
		}
		tx.Store(oid, 0, data)
		tx.Vote(bg)
		if _, err := tx.Finish(bg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIterate(b *testing.B) {
	s, oids := benchDB(b, 1000, 10)
	b.SetBytes(s.CommittedEnd())
	for b.Loop() {
		it, err := s.Iterate(bg, 0, zodb.MaxTid)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			info, err := it.Next(bg)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += len(info.Records)
		}
		it.Close()
		if n != len(oids) {
			b.Fatal(fmt.Sprint("records: ", n))
		}
	}
}
