package fs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// iterAll collects the transactions of it until io.EOF or an error.
func iterAll(t testing.TB, it zodb.TxnIterator) ([]*zodb.TxnInfo, error) {
	t.Helper()
	defer it.Close()
	var out []*zodb.TxnInfo
	for {
		info, err := it.Next(context.Background())
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, info)
	}
}

func iterBytes(t testing.TB, b []byte, start, stop zodb.Tid, m *fs.TxnMap) ([]*zodb.TxnInfo, error) {
	t.Helper()
	it, err := fs.NewFileIterator(bytes.NewReader(b), "Data.fs", int64(len(b)), start, stop, m)
	if err != nil {
		return nil, err
	}
	return iterAll(t, it)
}

func tids(infos []*zodb.TxnInfo) []zodb.Tid {
	var out []zodb.Tid
	for _, i := range infos {
		out = append(out, i.Tid)
	}
	return out
}

func TestIterateForward(t *testing.T) {
	txns := synthHistory(30)
	txns[4].Ext = []byte{0x80, 3, '}', '.'}
	f := synthBuild(txns)
	path := synthWrite(t, f.Bytes)
	it, err := fs.OpenFileIterator(path, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := iterAll(t, it)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(txns) {
		t.Fatalf("got %d transactions, want %d", len(got), len(txns))
	}
	for i, info := range got {
		want := txns[i]
		if info.Tid != want.Tid || info.Pos != f.TxnPos[i] || info.Status != ' ' ||
			string(info.User) != "/ bob" || string(info.Description) != "txn" || !bytes.Equal(info.Extension, want.Ext) {
			t.Errorf("txn %d: got %+v", i, info)
		}
		if len(info.Records) != len(want.Recs) {
			t.Fatalf("txn %d: %d records, want %d", i, len(info.Records), len(want.Recs))
		}
		for j, r := range info.Records {
			w := want.Recs[j]
			wantData, wantDataTxn := w.Data, zodb.Tid(0)
			if w.Back != nil {
				wantData = txns[w.Back[0]].Recs[w.Back[1]].Data
				wantDataTxn = txns[w.Back[0]].Tid
			}
			if r.Oid != w.Oid || r.Tid != want.Tid || !bytes.Equal(r.Data, wantData) || r.DataTxn != wantDataTxn {
				t.Errorf("txn %d record %d: got %+v", i, j, r)
			}
			if w.Data == nil && w.Back == nil && r.Data != nil {
				t.Errorf("txn %d record %d: deletion has data", i, j)
			}
		}
	}
}

func TestIterateStartStopInclusive(t *testing.T) {
	txns := synthHistory(40)
	f := synthBuild(txns)
	m := fs.NewTxnMap()
	for i, p := range f.TxnPos {
		if i%3 == 0 {
			m.Add(txns[i].Tid, p) // a sparse map, like a real one
		}
	}
	cases := []struct {
		name        string
		start, stop zodb.Tid
		from, to    int // expected transaction indexes, to exclusive
	}{
		{"all", 0, zodb.MaxTid, 0, 40},
		{"exact first", txns[0].Tid, txns[0].Tid, 0, 1},
		{"exact bounds", txns[5].Tid, txns[9].Tid, 5, 10},
		{"between tids", txns[5].Tid + 1, txns[9].Tid - 1, 6, 9},
		{"near end", txns[38].Tid, zodb.MaxTid, 38, 40},
		{"last only", txns[39].Tid, zodb.MaxTid, 39, 40},
		{"after last", txns[39].Tid + 1, zodb.MaxTid, 40, 40},
		{"before first", 1, txns[1].Tid, 0, 2},
		{"middle", txns[20].Tid - 1, txns[21].Tid, 20, 22},
		{"stop before start", txns[10].Tid, txns[9].Tid, 10, 10},
	}
	for _, c := range cases {
		for _, mm := range []*fs.TxnMap{nil, m} {
			got, err := iterBytes(t, f.Bytes, c.start, c.stop, mm)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var want []zodb.Tid
			for i := c.from; i < c.to; i++ {
				want = append(want, txns[i].Tid)
			}
			if !equalTids(tids(got), want) {
				t.Errorf("%s (map %v): got %v, want %v", c.name, mm != nil, tids(got), want)
			}
		}
	}
}

func equalTids(a, b []zodb.Tid) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// countingReader counts ReadAt calls.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

func TestIterateSeekCostNearEnds(t *testing.T) {
	txns := synthHistory(2000)
	f := synthBuild(txns)
	for _, c := range []struct {
		name  string
		start zodb.Tid
	}{
		{"near start", txns[2].Tid},
		{"near end", txns[1997].Tid},
		{"past end", txns[1999].Tid + 1},
	} {
		cr := &countingReader{r: bytes.NewReader(f.Bytes)}
		if _, err := fs.NewFileIterator(cr, "Data.fs", int64(len(f.Bytes)), c.start, zodb.MaxTid, nil); err != nil {
			t.Fatal(err)
		}
		if cr.reads > 20 {
			t.Errorf("%s: seek took %d reads", c.name, cr.reads)
		}
	}
}

func TestIterateStopsAtCheckpoint(t *testing.T) {
	txns := synthHistory(6)
	txns[4].Status = zodb.StatusCheckpoint
	f := synthBuild(txns[:5])
	got, err := iterBytes(t, f.Bytes, 0, zodb.MaxTid, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("got %d transactions, err %v; want 4, nil", len(got), err)
	}
	// Seeking to the 'c' transaction from the end gives nothing.
	got, err = iterBytes(t, f.Bytes, txns[4].Tid, zodb.MaxTid, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("seek to checkpoint: got %d transactions, err %v", len(got), err)
	}
}

func TestIterateSkipsLegacyUndone(t *testing.T) {
	txns := synthHistory(5)
	txns[2].Status = 'u'
	got, err := iterBytes(t, synthBuild(txns).Bytes, 0, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []zodb.Tid{txns[0].Tid, txns[1].Tid, txns[3].Tid, txns[4].Tid}; !equalTids(tids(got), want) {
		t.Errorf("got %v, want %v", tids(got), want)
	}
}

func TestIterateTornTail(t *testing.T) {
	txns := synthHistory(5)
	f := synthBuild(txns)
	for cut := f.TxnPos[4] + 1; cut < int64(len(f.Bytes)); cut += 7 {
		b := f.Bytes[:cut]
		for _, start := range []zodb.Tid{0, txns[3].Tid, txns[4].Tid} {
			got, err := iterBytes(t, b, start, zodb.MaxTid, nil)
			if err != nil {
				t.Fatalf("cut %d start %v: %v", cut, start, err)
			}
			if len(got) == 0 && start != txns[4].Tid || len(got) > 0 && got[len(got)-1].Tid != txns[3].Tid {
				t.Fatalf("cut %d start %v: got %v", cut, start, tids(got))
			}
		}
	}
}

func TestIterateEndBoundsReads(t *testing.T) {
	txns := synthHistory(5)
	f := synthBuild(txns)
	end := f.TxnPos[3]
	it, err := fs.NewFileIterator(bytes.NewReader(f.Bytes), "Data.fs", end, txns[2].Tid, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := iterAll(t, it)
	if err != nil || !equalTids(tids(got), []zodb.Tid{txns[2].Tid}) {
		t.Fatalf("got %v, %v", tids(got), err)
	}
}

func TestIterateDamageIsRecordError(t *testing.T) {
	txns := synthHistory(5)
	f := synthBuild(txns)
	b := bytes.Clone(f.Bytes)
	put64(b, f.TxnPos[2]+8, 40) // tlen 40: too short for its records
	_, err := iterBytes(t, b, 0, zodb.MaxTid, nil)
	var re *fs.RecordError
	if !errors.As(err, &re) || re.Pos != f.TxnPos[2] || !errors.Is(err, fs.ErrCorrupted) {
		t.Fatalf("err = %v, want a RecordError at %d", err, f.TxnPos[2])
	}
}

func TestIterateBadBackpointerLength(t *testing.T) {
	txns := synthHistory(11) // txn 10 has a backpointer to txn 5's record 0
	f := synthBuild(txns)
	b := bytes.Clone(f.Bytes)
	put64(b, f.RecPos[5][0]+34, 1<<62) // the target's plen
	_, err := iterBytes(t, b, txns[10].Tid, zodb.MaxTid, nil)
	if !errors.Is(err, fs.ErrCorrupted) {
		t.Fatalf("err = %v, want ErrCorrupted", err)
	}
}

func TestOpenFileIteratorBadMagic(t *testing.T) {
	path := synthWrite(t, []byte("FS99xxxxxxxxxxxxxxxxxxxxxxxxxx"))
	_, err := fs.OpenFileIterator(path, 0, zodb.MaxTid)
	if !errors.Is(err, fs.ErrBadMagic) {
		t.Fatalf("err = %v, want ErrBadMagic", err)
	}
	empty := synthWrite(t, nil)
	it, err := fs.OpenFileIterator(empty, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := iterAll(t, it); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %v %v", got, err)
	}
}

func TestIterateNextHeader(t *testing.T) {
	txns := synthHistory(10)
	f := synthBuild(txns)
	it, err := fs.NewFileIterator(bytes.NewReader(f.Bytes), "Data.fs", int64(len(f.Bytes)), txns[3].Tid, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for i := 3; i < 10; i++ {
		h, err := it.NextHeader(context.Background())
		if err != nil || h.Tid != txns[i].Tid || h.Pos != f.TxnPos[i] {
			t.Fatalf("header %d: %+v %v", i, h, err)
		}
	}
	if _, err := it.NextHeader(context.Background()); err != io.EOF {
		t.Fatalf("after last: %v", err)
	}
	it.Close()
	if _, err := it.Next(context.Background()); !errors.Is(err, zodb.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// With ReuseBuffers every transaction, handled before the next Next, is the
// same as with fresh buffers; only its lifetime changes.
func TestIterateReuseBuffers(t *testing.T) {
	txns := synthHistory(40)
	for i := range txns { // vary sizes so the buffer both fits and grows
		txns[i].Recs[0].Data = append(txns[i].Recs[0].Data, bytes.Repeat([]byte{byte(i)}, (i*37)%300)...)
	}
	f := synthBuild(txns)
	want, err := iterBytes(t, f.Bytes, 0, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	it, err := fs.NewFileIterator(bytes.NewReader(f.Bytes), "Data.fs", int64(len(f.Bytes)), 0, zodb.MaxTid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	it.ReuseBuffers(true)
	for i := 0; ; i++ {
		info, err := it.Next(context.Background())
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d transactions, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if info.Tid != w.Tid || !bytes.Equal(info.User, w.User) || len(info.Records) != len(w.Records) {
			t.Fatalf("txn %d: %+v, want %+v", i, info, w)
		}
		for j, r := range info.Records {
			if r.Oid != w.Records[j].Oid || r.DataTxn != w.Records[j].DataTxn || !bytes.Equal(r.Data, w.Records[j].Data) {
				t.Fatalf("txn %d record %d: %+v, want %+v", i, j, r, w.Records[j])
			}
		}
	}
}
