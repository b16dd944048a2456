package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// windowHistory returns transactions whose sizes straddle the iterator's
// read-ahead windows: many small ones, some of 100 and 300 KiB (bigger than
// a window), one of 5 MiB (bigger than the largest transaction read whole),
// backpointers into earlier ones and deletions.
func windowHistory() []synthTxn {
	var txns []synthTxn
	for i := range 400 {
		t := synthTxn{Tid: synthTid(i), User: []byte(fmt.Sprintf("/ u%d", i)), Description: []byte("d")}
		size := 20 + (i*7919)%3000
		switch {
		case i == 200:
			size = 5 << 20
		case i%50 == 17:
			size = 300 << 10
		case i%25 == 3:
			size = 100 << 10
		}
		data := append([]byte{0x80, 3}, bytes.Repeat([]byte{byte(i)}, size)...)
		t.Recs = []synthRec{{Oid: zodb.Oid(i % 13), Data: data}, {Oid: zodb.Oid(100 + i), Data: data[:size/2]}}
		if i%9 == 4 && i > 20 {
			t.Recs = append(t.Recs, synthRec{Oid: zodb.Oid((i - 20) % 13), Back: &[2]int{i - 20, 0}})
		}
		if i%31 == 30 {
			t.Recs = append(t.Recs, synthRec{Oid: zodb.Oid(100 + i - 1)})
		}
		txns = append(txns, t)
	}
	return txns
}

// checkAgainstSpec compares what the iterator returned with the
// transactions the file was built from, resolving backpointers by hand.
func checkAgainstSpec(t *testing.T, i int, got *zodb.TxnInfo, txns []synthTxn) {
	t.Helper()
	w := txns[i]
	if got.Tid != w.Tid || !bytes.Equal(got.User, w.User) || !bytes.Equal(got.Description, w.Description) || len(got.Records) != len(w.Recs) {
		t.Fatalf("txn %d: tid %s user %q, %d records; want %s %q, %d", i, got.Tid, got.User, len(got.Records), w.Tid, w.User, len(w.Recs))
	}
	for j, r := range got.Records {
		sr := w.Recs[j]
		want := sr.Data
		if sr.Back != nil {
			want = txns[sr.Back[0]].Recs[sr.Back[1]].Data
		}
		if r.Oid != sr.Oid || !bytes.Equal(r.Data, want) || (sr.Data == nil && sr.Back == nil) != (r.Data == nil) {
			t.Fatalf("txn %d record %d: oid %s, %d bytes; want oid %s, %d bytes", i, j, r.Oid, len(r.Data), sr.Oid, len(want))
		}
	}
}

// iterCheckAll iterates the whole of f with its own buffers, checks every
// transaction against txns once all are read, and returns how many reads
// the iterator made.
func iterCheckAll(t *testing.T, f synthFile, txns []synthTxn) int {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(f.Bytes)}
	it, err := fs.NewFileIterator(cr, "Data.fs", int64(len(f.Bytes)), 0, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := iterAll(t, it)
	if err != nil || len(got) != len(txns) {
		t.Fatalf("%d transactions, %v; want %d", len(got), err, len(txns))
	}
	for i := range got {
		checkAgainstSpec(t, i, got[i], txns)
	}
	return cr.reads
}

func TestIterateWindows(t *testing.T) {
	txns := windowHistory()
	f := synthBuild(txns)
	t.Run("own buffers, kept", func(t *testing.T) {
		// Every TxnInfo is still intact after the whole file was read.
		reads := iterCheckAll(t, f, txns)
		// Read ahead: far fewer reads than transactions (each read-ahead
		// costs a header peek and a window; the 5 MiB one is read record by
		// record).
		if reads > len(txns)/2 {
			t.Fatalf("%d reads for %d transactions", reads, len(txns))
		}
	})
	t.Run("reused buffers", func(t *testing.T) {
		it, err := fs.NewFileIterator(bytes.NewReader(f.Bytes), "Data.fs", int64(len(f.Bytes)), 0, zodb.MaxTid, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		it.ReuseBuffers(true)
		var prev *zodb.TxnInfo
		for i := 0; ; i++ {
			info, err := it.Next(context.Background())
			if err == io.EOF {
				if i != len(txns) {
					t.Fatalf("%d transactions, want %d", i, len(txns))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if prev != nil && info != prev {
				t.Fatalf("txn %d: a new TxnInfo although buffers are reused", i)
			}
			prev = info
			checkAgainstSpec(t, i, info, txns)
		}
	})
	t.Run("from the middle", func(t *testing.T) {
		for _, start := range []int{17, 199, 200, 201, 399} {
			got, err := iterBytes(t, f.Bytes, txns[start].Tid, zodb.MaxTid, nil)
			if err != nil || len(got) != len(txns)-start {
				t.Fatalf("start %d: %d transactions, %v", start, len(got), err)
			}
			for i := range got {
				checkAgainstSpec(t, start+i, got[i], txns)
			}
		}
	})
}

// failingReader fails every read that touches offset bad.
type failingReader struct {
	r   io.ReaderAt
	bad int64
}

var errDisk = errors.New("simulated I/O error")

func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.bad && f.bad < off+int64(len(p)) {
		return 0, errDisk
	}
	return f.r.ReadAt(p, off)
}

// A read error inside a window is reported, naming the file and an offset,
// whether it falls on a header, a record or data; nothing is skipped.
func TestIterateWindowReadError(t *testing.T) {
	txns := windowHistory()
	f := synthBuild(txns)
	for _, bad := range []int64{f.TxnPos[5], f.RecPos[30][1] + 3, f.RecPos[30][1] + 100, f.TxnPos[201] - 1, f.RecPos[200][0] + 1<<20} {
		it, err := fs.NewFileIterator(&failingReader{r: bytes.NewReader(f.Bytes), bad: bad}, "Data.fs", int64(len(f.Bytes)), 0, zodb.MaxTid, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := iterAll(t, it)
		var re *fs.RecordError
		if !errors.Is(err, errDisk) || !errors.As(err, &re) || re.Path != "Data.fs" {
			t.Fatalf("bad byte %d: %d transactions, error %v", bad, len(got), err)
		}
		// Exactly the transactions before the one holding the bad byte.
		want := 0
		for want+1 < len(f.TxnPos) && f.TxnPos[want+1] <= bad {
			want++
		}
		if len(got) != want {
			t.Fatalf("bad byte %d: %d transactions before the error, want %d", bad, len(got), want)
		}
		for i := range got {
			checkAgainstSpec(t, i, got[i], txns)
		}
	}
}

// Transactions larger than a window are read with one read each: the
// window reaches past each one by a header, so the next one's length is
// known without a read of its own. (A read per header went through the
// storage's memory mapping and counted every transaction's pages in the
// primary's RSS while it streamed.)
func TestIterateBigTransactionsOneReadEach(t *testing.T) {
	var txns []synthTxn
	for i := range 20 {
		txns = append(txns, synthTxn{Tid: synthTid(i), Recs: []synthRec{{Oid: zodb.Oid(i), Data: bytes.Repeat([]byte{byte(i)}, 300<<10)}}})
	}
	if reads := iterCheckAll(t, synthBuild(txns), txns); reads > len(txns)+2 {
		t.Fatalf("%d reads for %d transactions larger than a window", reads, len(txns))
	}
}

// A damaged data record inside a window is reported as the general path
// reports it — the record's kind and offset — with every transaction
// before it returned whole, with reused buffers or without: the window's
// in-place decoding takes no record it should refuse.
func TestIterateWindowDamagedRecord(t *testing.T) {
	txns := synthHistory(12) // txn 10 has a second record: a backpointer to txn 5's record 0
	f := synthBuild(txns)
	rec := func(i, j int) int64 { return f.RecPos[i][j] }
	cases := append(recordDamages(f),
		recordDamage{"plen negative", func(b []byte) { put64(b, rec(3, 0)+34, -2) }, 3, rec(3, 0), "data record"},
		recordDamage{"prev negative", func(b []byte) { put64(b, rec(2, 0)+16, -1) }, 2, rec(2, 0), "data record"},
		recordDamage{"second record's tloc", func(b []byte) { put64(b, rec(10, 1)+24, 0) }, 10, rec(10, 1), "data record"},
	)
	for _, c := range cases {
		for _, reuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reuse=%v", c.name, reuse), func(t *testing.T) {
				b := bytes.Clone(f.Bytes)
				c.damage(b)
				it, err := fs.NewFileIterator(bytes.NewReader(b), "Data.fs", int64(len(b)), 0, zodb.MaxTid, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer it.Close()
				it.ReuseBuffers(reuse)
				n := 0
				for ; ; n++ {
					info, err := it.Next(context.Background())
					if err != nil {
						var re *fs.RecordError
						if !errors.As(err, &re) || re.Pos != c.pos || re.Record != c.record {
							t.Fatalf("after %d transactions: %v; want a %s error at %d", n, err, c.record, c.pos)
						}
						break
					}
					checkAgainstSpec(t, n, info, txns)
				}
				if n != c.txn {
					t.Fatalf("%d transactions before the error, want %d", n, c.txn)
				}
			})
		}
	}
}
