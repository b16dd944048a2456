package fs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// benchBigFile writes a sparse multi-GB Data.fs: one transaction holding a
// 4 GiB object (a hole on disk) followed by n small transactions. It
// returns the path, the file size, the tids and positions of the small
// transactions, and a TxnMap filled as a storage would fill it.
func benchBigFile(b *testing.B, n int) (string, int64, []zodb.Tid, []int64, *fs.TxnMap) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "Data.fs")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	m := fs.NewTxnMap()
	const big = 4 << 30
	h := fs.TxnHeader{Pos: fs.MagicSize, Tid: synthTid(0), Len: fs.TxnHeaderSize + fs.DataHeaderSize + big, Status: ' '}
	d := fs.DataHeader{Oid: 1, Tid: h.Tid, Tloc: h.Pos, PLen: big}
	head := d.Encode(h.Encode(fs.Magic30[:]))
	if _, err := f.Write(head); err != nil {
		b.Fatal(err)
	}
	m.Add(h.Tid, h.Pos)
	pos := h.End()
	small := synthHistory(n + 1)[1:]
	tail := be64(nil, h.Len)
	tail0 := pos
	pos += fs.TrailerSize
	tids := make([]zodb.Tid, n)
	poss := make([]int64, n)
	for i, t := range small {
		t.Recs = t.Recs[:1] // no backpointers: their targets would be in the synthetic prefix
		enc := synthBuild([]synthTxn{t}).Bytes[fs.MagicSize:]
		enc = rebase(enc, pos)
		tail = append(tail, enc...)
		tids[i], poss[i] = t.Tid, pos
		m.Add(t.Tid, pos)
		pos += int64(len(enc))
	}
	if _, err := f.WriteAt(tail, tail0); err != nil {
		b.Fatal(err)
	}
	return path, pos, tids, poss, m
}

// rebase moves a one-transaction encoding built at offset 4 to offset pos:
// it rewrites the tloc of its records (their prev is 0).
func rebase(enc []byte, pos int64) []byte {
	h, _ := fs.DecodeTxnHeader(enc, 0)
	for p := h.HeaderLen(); p < h.Len; {
		d, _ := fs.DecodeDataHeader(enc[p:], p)
		put64(enc, p+24, pos)
		p += d.RecordLen()
	}
	return enc
}

func BenchmarkIterSeek(b *testing.B) {
	path, size, tids, _, m := benchBigFile(b, 20000)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		name  string
		start zodb.Tid
		m     *fs.TxnMap
	}{
		{"NearEnd", tids[len(tids)-2], nil},
		{"NearEndMap", tids[len(tids)-2], m},
		{"MiddleMap", tids[len(tids)/2+17], m},
		{"MiddleNoMap", tids[len(tids)/2+17], nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			cr := &countingReader{r: f}
			for i := 0; i < b.N; i++ {
				it, err := fs.NewFileIterator(cr, path, size, c.start, zodb.MaxTid, c.m)
				if err != nil {
					b.Fatal(err)
				}
				info, err := it.Next(context.Background())
				if err != nil || info.Tid != c.start {
					b.Fatalf("first transaction: %v, %v", info, err)
				}
			}
			b.ReportMetric(float64(cr.reads)/float64(b.N), "reads/op")
			b.ReportMetric(float64(size)/(1<<30), "GiB-file")
		})
	}
}
