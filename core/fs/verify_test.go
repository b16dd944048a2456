package fs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

func verifyBytes(t testing.TB, b []byte) (*fs.VerifyReport, error) {
	t.Helper()
	return fs.VerifyReader(context.Background(), bytes.NewReader(b), "Data.fs", int64(len(b)), fs.VerifyOptions{Strict: true})
}

func TestVerifyGoodFile(t *testing.T) {
	txns := synthHistory(40)
	txns[7].Status = zodb.StatusPacked
	f := synthBuild(txns)
	path := synthWrite(t, f.Bytes)
	var calls int
	rep, err := fs.Verify(context.Background(), path, fs.VerifyOptions{Progress: func(pos, size int64) { calls++ }, ProgressEvery: 100})
	if err != nil {
		t.Fatal(err)
	}
	var recs, backs, dels int64
	for _, tx := range txns {
		for _, r := range tx.Recs {
			recs++
			switch {
			case r.Back != nil:
				backs++
			case r.Data == nil:
				dels++
			}
		}
	}
	if rep.Txns != 40 || rep.Records != recs || rep.Backpointers != backs || rep.Deletions != dels || rep.Oids != 6 ||
		rep.Magic != "FS30" || rep.FirstTid != txns[0].Tid || rep.LastTid != txns[39].Tid || rep.WarningCount != 0 {
		t.Errorf("report = %+v", rep)
	}
	if calls < 2 {
		t.Errorf("progress called %d times", calls)
	}
}

func TestVerifyDamage(t *testing.T) {
	txns := synthHistory(12) // txn 10 has a second record: a backpointer to txn 5's record 0
	f := synthBuild(txns)
	rec := func(i, j int) int64 { return f.RecPos[i][j] }
	type verifyDamage struct {
		name   string
		damage func(b []byte) []byte
		pos    int64 // expected error offset
		record string
	}
	cases := []verifyDamage{
		{"bad magic", func(b []byte) []byte { b[2] = '9'; return b }, 0, "file header"},
		{"empty", func(b []byte) []byte { return nil }, 0, "file header"},
		{"tid reduction", func(b []byte) []byte { copy(b[f.TxnPos[3]:], b[f.TxnPos[2]:f.TxnPos[2]+8]); return b }, f.TxnPos[3], "transaction"},
		{"zero tid", func(b []byte) []byte { put64(b, f.TxnPos[0], 0); return b }, f.TxnPos[0], "transaction"},
		{"truncated tail", func(b []byte) []byte { return b[:len(b)-3] }, f.TxnPos[11], "transaction"},
		{"torn header", func(b []byte) []byte { return b[:f.TxnPos[11]+10] }, f.TxnPos[11], "transaction"},
		{"checkpoint", func(b []byte) []byte { b[f.TxnPos[11]+16] = 'c'; return b }, f.TxnPos[11], "transaction"},
		{"checkpoint before the last", func(b []byte) []byte { b[f.TxnPos[10]+16] = 'c'; return b }, f.TxnPos[10], "transaction"},
		{"bad status", func(b []byte) []byte { b[f.TxnPos[4]+16] = 'x'; return b }, f.TxnPos[4], "transaction"},
		{"tlen+1", func(b []byte) []byte { b[f.TxnPos[6]+15]++; return b }, f.TxnPos[6], "transaction"},
		{"trailer", func(b []byte) []byte { b[f.TxnPos[7]-1]++; return b }, f.TxnPos[6], "transaction"},
		{"tlen below header", func(b []byte) []byte { put64(b, f.TxnPos[5]+8, 10); return b }, f.TxnPos[5], "transaction"},
		{"prev not newest", func(b []byte) []byte { put64(b, rec(11, 0)+16, rec(1, 0)); return b }, rec(11, 0), "data record"},
		{"prev of new oid", func(b []byte) []byte { put64(b, rec(2, 0)+16, rec(1, 0)); return b }, rec(2, 0), "data record"},
		{"backpointer other oid", func(b []byte) []byte { put64(b, rec(10, 1)+42, rec(6, 0)); return b }, rec(10, 1), "backpointer"},
		{"backpointer mid-record", func(b []byte) []byte { put64(b, rec(10, 1)+42, rec(5, 0)+3); return b }, rec(10, 1), "backpointer"},
	}
	for _, d := range recordDamages(f) {
		cases = append(cases, verifyDamage{d.name, func(b []byte) []byte { d.damage(b); return b }, d.pos, d.record})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(bytes.Clone(f.Bytes))
			_, err := verifyBytes(t, b)
			var re *fs.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a RecordError", err)
			}
			if re.Pos != c.pos || re.Record != c.record {
				t.Errorf("err = %v, want %s at %d", err, c.record, c.pos)
			}
		})
	}
}

// Without Strict, an unfinished last transaction — what a live database
// shows between vote and finish, or a crash leaves — is a note, not a
// problem; so is one that was unfinished when verify took the file's size
// and finished (' ') by the time verify reached it, the file having grown
// meanwhile. A 'c' before the last, or a finished transaction cut short
// in a file that has not grown, still is.
func TestVerifyUnfinishedTail(t *testing.T) {
	txns := synthHistory(12)
	f := synthBuild(txns)
	last := f.TxnPos[11]
	for _, c := range []struct {
		name       string
		damage     func(b []byte) []byte
		unfinished bool
		size       int64 // the size verify took, if not the file's
	}{
		{"finished while verify read the rest", func(b []byte) []byte { return b }, true, last + 30},
		{"voted", func(b []byte) []byte { b[last+16] = 'c'; return b }, true, 0},
		{"voted, half written", func(b []byte) []byte { b[last+16] = 'c'; return b[:last+30] }, true, 0},
		{"header half written", func(b []byte) []byte { return b[:last+10] }, true, 0},
		{"finished, cut short", func(b []byte) []byte { return b[:len(b)-3] }, false, 0},
		{"voted before the last", func(b []byte) []byte { b[f.TxnPos[10]+16] = 'c'; return b }, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(bytes.Clone(f.Bytes))
			size := int64(len(b))
			if c.size != 0 {
				size = c.size
			}
			rep, err := fs.VerifyReader(context.Background(), bytes.NewReader(b), "Data.fs", size, fs.VerifyOptions{})
			if !c.unfinished {
				if err == nil {
					t.Fatalf("no problem reported (unfinished: %v)", rep.Unfinished)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Unfinished == nil || rep.Unfinished.Pos != last || rep.Txns != 11 {
				t.Errorf("unfinished %v after %d transactions, want the one at %d after 11", rep.Unfinished, rep.Txns, last)
			}
		})
	}
}

// A damaged length field in the middle of the file is damage even while
// the file grows (a live primary appending during verify): the
// transaction it describes is not there whole, its trailer not in place.
func TestVerifyDamagedLengthInGrowingFile(t *testing.T) {
	f := synthBuild(synthHistory(12))
	b := bytes.Clone(f.Bytes)
	mid := f.TxnPos[4]
	tlen := binary.BigEndian.Uint64(b[mid+8 : mid+16])
	binary.BigEndian.PutUint64(b[mid+8:mid+16], tlen|1<<32)
	size := int64(len(b))
	grown := append(b, bytes.Repeat([]byte{0}, 100)...)
	if rep, err := fs.VerifyReader(context.Background(), bytes.NewReader(grown), "Data.fs", size, fs.VerifyOptions{}); err == nil {
		t.Fatalf("damaged length at %d passed as the unfinished tail: %d transactions, note %v", mid, rep.Txns, rep.Unfinished)
	}
}

// verify runs against a live database: a commit between vote and finish
// is the unfinished tail, not damage.
func TestVerifyLiveDatabase(t *testing.T) {
	path, _ := voteInProgress(t)
	rep, err := fs.Verify(bg, path, fs.VerifyOptions{})
	if err != nil || rep.Unfinished == nil || rep.Txns != 3 {
		t.Fatalf("verify during a commit: %+v, %v; want 3 transactions and the voted one unfinished", rep, err)
	}
	if _, err := fs.Verify(bg, path, fs.VerifyOptions{Strict: true}); err == nil {
		t.Error("strict verify during a commit: no problem reported")
	}
}

func TestVerifyWarnings(t *testing.T) {
	txns := synthHistory(6)
	txns[3].Recs[0].Tid = txns[2].Tid + 1 // restore in a copy can do this
	f := synthBuild(txns)
	b := bytes.Clone(f.Bytes)
	put64(b, f.RecPos[5][0]+16, 0) // oid 0 again with prev 0, as pack leaves it
	rep, err := verifyBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.WarningCount != 2 || rep.Warnings[0].Pos != f.RecPos[3][0] || rep.Warnings[1].Pos != f.RecPos[5][0] {
		t.Errorf("warnings = %v", rep.Warnings)
	}
}

func TestVerifyLegacyUndoneSkipped(t *testing.T) {
	txns := synthHistory(4)
	txns[1].Status = 'u'
	txns[1].Recs = nil
	rep, err := verifyBytes(t, synthBuild(txns).Bytes)
	if err != nil || rep.UndoneTxns != 1 || rep.Txns != 4 {
		t.Fatalf("report %+v, err %v", rep, err)
	}
}

func TestVerifyCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := synthBuild(synthHistory(3)).Bytes
	if _, err := fs.VerifyReader(ctx, bytes.NewReader(b), "x", int64(len(b)), fs.VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzVerify: arbitrary bytes must give a report or an error, never a panic.
func FuzzVerify(f *testing.F) {
	f.Add(synthBuild(synthHistory(12)).Bytes)
	f.Add([]byte("FS21"))
	py, err := os.ReadFile("testdata/pydump.fs") // the Python-written seed
	if err != nil {
		f.Fatal(err)
	}
	f.Add(py)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := verifyBytes(t, b)
		if (rep == nil) == (err == nil) {
			t.Fatalf("report %v and error %v", rep, err)
		}
	})
}
