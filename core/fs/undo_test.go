package fs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// unUndo undoes the given transactions in one transaction.
func unUndo(t testing.TB, s *fs.FileStorage, tids ...zodb.Tid) (zodb.Tid, []zodb.Oid, error) {
	t.Helper()
	tx, err := s.Begin(bg, zodb.TxnMeta{Description: []byte("undo")}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var oids []zodb.Oid
	for _, tid := range tids {
		o, err := tx.Undo(bg, tid)
		if err != nil {
			tx.Abort()
			return 0, nil, err
		}
		oids = append(oids, o...)
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	tid, err := tx.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	return tid, oids, nil
}

func TestUndo(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t1 := stCommit(t, s, stWrite{0, 0, []byte("r1")}, stWrite{1, 0, []byte("a1")})
	t2 := stCommit(t, s, stWrite{1, t1, []byte("a2")}, stWrite{2, 0, []byte("b2")})
	t3 := stCommit(t, s, stWrite{0, t1, []byte("r3")})

	// Undo t2: oid 1 back to a1 (a backpointer), oid 2's creation undone.
	u, oids, err := unUndo(t, s, t2)
	if err != nil || len(oids) != 2 {
		t.Fatalf("undo t2: %v %v", oids, err)
	}
	if d, ser := stLoad(t, s, 1); string(d) != "a1" || ser != u {
		t.Errorf("oid 1 after undo: %q %s", d, ser)
	}
	if _, _, err := s.Load(bg, 2); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("undone creation loads: %v", err)
	}
	if d, _, _, err := s.LoadBefore(bg, 1, u); err != nil || string(d) != "a2" {
		t.Errorf("before the undo: %q %v", d, err)
	}
	// Undo the undo: a redo, a backpointer to t2's records.
	if _, _, err := unUndo(t, s, u); err != nil {
		t.Fatalf("redo: %v", err)
	}
	if d, _ := stLoad(t, s, 2); string(d) != "b2" {
		t.Errorf("oid 2 after redo: %q", d)
	}
	// t1 wrote oid 0, which t3 changed since: a conflict Python would try
	// to resolve; zrs refuses.
	var ue *zodb.UndoError
	if _, _, err := unUndo(t, s, t1); !errors.As(err, &ue) || ue.Tid != t1 || !errors.Is(err, zodb.ErrUndo) {
		t.Errorf("conflicting undo: %v", err)
	}
	if _, _, err := unUndo(t, s, t3+12345); !errors.As(err, &ue) {
		t.Errorf("undo of an unknown tid: %v", err)
	}
	log, err := s.UndoLog(bg, 0, 100, nil)
	if err != nil || len(log) != 5 || log[0].Tid != s.LastTransaction() || log[4].Tid != t1 {
		t.Errorf("undo log: %d entries %v", len(log), err)
	}
	log, _ = s.UndoLog(bg, 1, 3, nil)
	if len(log) != 2 || log[0].Tid != u {
		t.Errorf("undo log window: %+v", log)
	}
	log, _ = s.UndoLog(bg, 0, -2, func(i *zodb.UndoInfo) bool { return i.Tid != u })
	if len(log) != 2 || log[1].Tid != t3 {
		t.Errorf("filtered undo log: %+v", log)
	}
}

// An undo compares the data of the oid's current revision with the data
// being undone, as ZODB's FileStorage does: a later transaction that wrote
// the same bytes again (a new record, not a backpointer) does not stand in
// the way; different bytes do.
func TestUndoSameBytesLater(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t0 := stCommit(t, s, stWrite{1, 0, []byte("z")})
	t1 := stCommit(t, s, stWrite{1, t0, []byte("a")}, stWrite{2, 0, []byte("new")})
	stCommit(t, s, stWrite{1, t1, []byte("a")}, stWrite{2, t1, []byte("new")})
	if _, _, err := unUndo(t, s, t1); err != nil {
		t.Fatalf("undo of t1, whose data t2 wrote again: %v", err)
	}
	if d, _ := stLoad(t, s, 1); string(d) != "z" {
		t.Errorf("oid 1 after the undo: %q, want %q", d, "z")
	}
	if _, _, err := s.Load(bg, 2); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("oid 2, created by the undone t1: %v; want it gone", err)
	}
	t4 := stCommit(t, s, stWrite{1, s.LastTransaction(), []byte("b")})
	stCommit(t, s, stWrite{1, t4, []byte("c")})
	var ue *zodb.UndoError
	if _, _, err := unUndo(t, s, t4); !errors.As(err, &ue) || ue.Oid != 1 {
		t.Errorf("undo of t4, whose data changed since: %v; want an UndoError for oid 1", err)
	}
}

// A transaction may hold two records of one oid (stored twice). Each is
// judged against the state before the undo began, as ZODB does (its
// records join the transaction's index only after the whole undone
// transaction is processed), not against the undo record just written for
// the other one.
func TestUndoTransactionStoringAnOidTwice(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t0 := stCommit(t, s, stWrite{1, 0, []byte("z")})
	t1 := stCommit(t, s, stWrite{1, t0, []byte("a")}, stWrite{1, t0, []byte("a")})
	if _, _, err := unUndo(t, s, t1); err != nil {
		t.Fatalf("undo of a transaction that stored oid 1 twice: %v", err)
	}
	if d, _ := stLoad(t, s, 1); string(d) != "z" {
		t.Errorf("oid 1 after the undo: %q, want %q", d, "z")
	}
}

// Damage met while comparing the data comes back as the *RecordError that
// names the file and the offset, not as a refused undo.
func TestUndoReportsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t1 := stCommit(t, s, stWrite{1, 0, []byte("a")})
	first := int64(fs.MagicSize + fs.TxnHeaderSize + len("/ tester") + len("test"))
	stCommit(t, s, stWrite{1, t1, []byte("b")})
	u, _, err := unUndo(t, s, s.LastTransaction()) // a backpointer to t1's record
	if err != nil {
		t.Fatal(err)
	}
	stCommit(t, s, stWrite{1, u, []byte("c")})
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var oid [8]byte
	if _, err := f.ReadAt(oid[:], first); err != nil || oid != [8]byte{7: 1} {
		t.Fatalf("t1's record is not at %d: % x %v", first, oid, err)
	}
	if _, err := f.WriteAt([]byte{7: 99}, first); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Undoing the undo compares the data it points at, in the damaged
	// record, with the current revision's.
	_, _, err = unUndo(t, s, u)
	var re *fs.RecordError
	if !errors.As(err, &re) || re.Pos != first {
		t.Fatalf("undo over a damaged record: %T %v; want a *fs.RecordError at %d", err, err, first)
	}
}

func TestUndoLogStopsAtPacked(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("r1")})
	tx, _ := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{Status: zodb.StatusPacked})
	tx.Store(1, 0, []byte("p"))
	tx.Vote(bg)
	tp, _ := tx.Finish(bg)
	stCommit(t, s, stWrite{2, 0, []byte("x")})
	log, _ := s.UndoLog(bg, 0, 10, nil)
	if len(log) != 1 {
		t.Errorf("undo log crosses a packed transaction: %d", len(log))
	}
	var ue *zodb.UndoError
	if _, _, err := unUndo(t, s, tp); !errors.As(err, &ue) {
		t.Errorf("undo of a packed transaction: %v", err)
	}
}

// TestRestoreCopyIsByteIdentical copies a Go-made file with undo
// backpointers and deletions through Iterate + Restore (what
// copyTransactionsFrom does) and compares the bytes.
func TestRestoreCopyIsByteIdentical(t *testing.T) {
	dir := t.TempDir()
	src := stOpen(t, filepath.Join(dir, "src.fs"), fs.Options{})
	t1 := stCommit(t, src, stWrite{0, 0, []byte("r1")}, stWrite{1, 0, []byte("a1")}, stWrite{2, 0, []byte("b1")})
	t2 := stCommit(t, src, stWrite{1, t1, []byte("a2")}, stWrite{3, 0, []byte("c2")})
	u1, _, err := unUndo(t, src, t2)
	if err != nil {
		t.Fatal(err)
	}
	u2, _, err := unUndo(t, src, u1)
	if err != nil {
		t.Fatal(err)
	}
	stCommit(t, src, stWrite{2, t1, nil})
	if _, _, err := unUndo(t, src, u2); err != nil {
		t.Fatal(err)
	}
	src.Close()
	src = stOpen(t, filepath.Join(dir, "src.fs"), fs.Options{ReadOnly: true})
	dst := stOpen(t, filepath.Join(dir, "dst.fs"), fs.Options{})
	it, err := src.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	backs := 0
	for {
		info, err := it.Next(bg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tx, err := dst.Begin(bg, info.TxnMeta, zodb.BeginOptions{Tid: info.Tid, Status: info.Status})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range info.Records {
			if r.DataTxn != 0 {
				backs++
			}
			if err := tx.Restore(r.Oid, r.Tid, r.Data, r.DataTxn); err != nil {
				t.Fatal(err)
			}
		}
		tx.Vote(bg)
		if _, err := tx.Finish(bg); err != nil {
			t.Fatal(err)
		}
	}
	dst.Close()
	a, _ := os.ReadFile(filepath.Join(dir, "src.fs"))
	b, _ := os.ReadFile(filepath.Join(dir, "dst.fs"))
	if backs == 0 || !bytes.Equal(a, b) {
		t.Errorf("copy differs (%d vs %d bytes, %d backpointers)", len(a), len(b), backs)
	}
}

func TestRestoreRules(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t1 := stCommit(t, s, stWrite{0, 0, []byte("r1")}, stWrite{1, 0, []byte("a1")})
	restore := func(oid zodb.Oid, serial zodb.Tid, data []byte, dataTxn zodb.Tid) error {
		tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Restore(oid, serial, data, dataTxn); err != nil {
			tx.Abort()
			return err
		}
		tx.Vote(bg)
		_, err = tx.Finish(bg)
		return err
	}
	// Data equal to t1's record: a backpointer; serial kept as given.
	if err := restore(1, t1+7, []byte("a1"), t1); err != nil {
		t.Fatal(err)
	}
	if d, ser := stLoad(t, s, 1); string(d) != "a1" || ser != t1+7 {
		t.Errorf("restored: %q %s", d, ser)
	}
	h, _ := s.History(bg, 1, 1)
	if h[0].Size != 0 {
		t.Errorf("restore with equal data wrote it inline (size %d)", h[0].Size)
	}
	// Different data: inline.
	if err := restore(1, t1+8, []byte("zz"), t1); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(bg, 1, 1); h[0].Size != 2 {
		t.Errorf("restore with other data: size %d", h[0].Size)
	}
	// Nil data, no data_txn: a deletion.
	if err := restore(1, t1+9, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(bg, 1); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("restored deletion: %v", err)
	}
	// Missing data_txn: an UndoError, as in Python.
	var ue *zodb.UndoError
	if err := restore(5, t1+10, []byte("x"), t1-1); !errors.As(err, &ue) {
		t.Errorf("missing data_txn: %v", err)
	}
	if oid, _ := s.NewOid(bg); oid != 2 {
		t.Errorf("new oid after restores: %s", oid)
	}
}

// An object whose creation was undone three times ends on a record that
// points back to the undone creation: it cannot be loaded, but it has a
// tid, which TidBefore (Python's getTid) returns; the undone creation
// itself has none.
func TestTidBeforeBackpointerToUndoneCreation(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t1 := stCommit(t, s, stWrite{0, 0, []byte("root")}, stWrite{5, 0, []byte("created")})
	u1, _, err := unUndo(t, s, t1) // undone creation: no data, backpointer 0
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TidBefore(bg, 5, zodb.MaxTid); !errors.Is(err, zodb.ErrNotFound) {
		t.Fatalf("TidBefore of an undone creation: %v, want not found", err)
	}
	u2, _, err := unUndo(t, s, u1) // back again
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.TidBefore(bg, 5, zodb.MaxTid); err != nil || got != u2 {
		t.Fatalf("TidBefore after undoing the undo: %s, %v; want %s", got, err, u2)
	}
	u3, _, err := unUndo(t, s, u2) // a backpointer to the undone creation
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(bg, 5); !errors.Is(err, zodb.ErrNotFound) {
		t.Fatalf("load after the third undo: %v, want not found", err)
	}
	if got, err := s.TidBefore(bg, 5, zodb.MaxTid); err != nil || got != u3 {
		t.Fatalf("TidBefore after the third undo: %s, %v; want %s, as Python's getTid", got, err, u3)
	}
	if got, err := s.TidBefore(bg, 5, u3); err != nil || got != u2 {
		t.Fatalf("TidBefore the third undo: %s, %v; want %s", got, err, u2)
	}
}
