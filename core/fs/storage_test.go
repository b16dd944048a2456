package fs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

var bg = context.Background()

// stOpen opens (creating) a storage in a temp dir and closes it at cleanup.
func stOpen(t testing.TB, path string, opts fs.Options) *fs.FileStorage {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "Data.fs")
	}
	s, err := fs.Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stWrite is one store of a test commit: data nil means delete.
type stWrite struct {
	oid  zodb.Oid
	old  zodb.Tid
	data []byte
}

// stCommit commits the writes in one transaction and returns its tid.
func stCommit(t testing.TB, s *fs.FileStorage, ws ...stWrite) zodb.Tid {
	t.Helper()
	tx, err := s.Begin(bg, zodb.TxnMeta{User: []byte("/ tester"), Description: []byte("test")}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.data == nil {
			err = tx.Delete(w.oid, w.old)
		} else {
			err = tx.Store(w.oid, w.old, w.data)
		}
		if err != nil {
			tx.Abort()
			t.Fatalf("write %s: %v", w.oid, err)
		}
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	tid, err := tx.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

func stLoad(t testing.TB, s *fs.FileStorage, oid zodb.Oid) ([]byte, zodb.Tid) {
	t.Helper()
	data, serial, err := s.Load(bg, oid)
	if err != nil {
		t.Fatalf("load %s: %v", oid, err)
	}
	return data, serial
}

func TestCommitLoadHistory(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	if s.LastTransaction() != 0 || s.Len() != 0 {
		t.Fatalf("new storage not empty")
	}
	t1 := stCommit(t, s, stWrite{0, 0, []byte("root1")}, stWrite{1, 0, []byte("one1")})
	t2 := stCommit(t, s, stWrite{0, t1, []byte("root2")})
	t3 := stCommit(t, s, stWrite{1, t1, []byte("one3")}, stWrite{0, t2, []byte("root3")})
	if !(t1 < t2 && t2 < t3) || s.LastTransaction() != t3 {
		t.Fatalf("tids not increasing: %s %s %s", t1, t2, t3)
	}
	if d, ser := stLoad(t, s, 0); string(d) != "root3" || ser != t3 {
		t.Errorf("load 0 = %q %s", d, ser)
	}
	for _, c := range []struct {
		oid          zodb.Oid
		before       zodb.Tid
		data         string
		serial, next zodb.Tid
		err          error
	}{
		{0, t3, "root2", t2, t3, nil},
		{0, t2, "root1", t1, t2, nil},
		{0, t3 + 1, "root3", t3, 0, nil},
		{0, t1, "", 0, 0, zodb.ErrNoRevision},
		{1, t3, "one1", t1, t3, nil},
		{7, t3, "", 0, 0, zodb.ErrNotFound},
	} {
		d, ser, next, err := s.LoadBefore(bg, c.oid, c.before)
		if !errors.Is(err, c.err) || (err == nil && (string(d) != c.data || ser != c.serial || next != c.next)) {
			t.Errorf("loadBefore(%s, %s) = %q %s %s %v, want %q %s %s %v", c.oid, c.before, d, ser, next, err, c.data, c.serial, c.next, c.err)
		}
	}
	if d, err := s.LoadSerial(bg, 0, t2); err != nil || string(d) != "root2" {
		t.Errorf("loadSerial = %q %v", d, err)
	}
	if _, err := s.LoadSerial(bg, 1, t2); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("loadSerial of a missing serial: %v", err)
	}
	h, err := s.History(bg, 0, 10)
	if err != nil || len(h) != 3 || h[0].Tid != t3 || h[2].Tid != t1 || string(h[1].User) != "/ tester" || h[0].Size != 5 {
		t.Errorf("history = %+v %v", h, err)
	}
	if s.Len() != 2 {
		t.Errorf("len = %d", s.Len())
	}
	if oid, _ := s.NewOid(bg); oid != 2 {
		t.Errorf("new oid = %s", oid)
	}
}

func TestConflictAndDelete(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	t1 := stCommit(t, s, stWrite{0, 0, []byte("a")}, stWrite{5, 0, []byte("b")})
	t2 := stCommit(t, s, stWrite{0, t1, []byte("a2")})

	tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ce *zodb.ConflictError
	if err := tx.Store(0, t1, []byte("x")); !errors.As(err, &ce) || ce.Committed != t2 || ce.Old != t1 || ce.Oid != 0 {
		t.Errorf("stale store: %v", err)
	}
	// Python's FileStorage stores an oid it does not hold whatever the
	// serial: there is nothing to conflict with (checked with ZODB 6.4).
	if err := tx.Store(9, t1, []byte("x")); err != nil {
		t.Errorf("new oid with a serial: %v", err)
	}
	if err := tx.Delete(8, 0); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("delete of unknown oid: %v", err)
	}
	if err := tx.Delete(5, t2); !errors.As(err, &ce) {
		t.Errorf("delete with a stale serial: %v", err)
	}
	if err := tx.CheckCurrentSerial(0, t1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Vote(bg); !errors.As(err, &ce) {
		t.Errorf("vote with a stale read: %v", err)
	}
	tx.Abort()
	t3 := stCommit(t, s, stWrite{5, t1, nil})
	if _, _, err := s.Load(bg, 5); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("load of a deleted object: %v", err)
	}
	if _, _, _, err := s.LoadBefore(bg, 5, t3+1); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("loadBefore after deletion: %v", err)
	}
	if d, _, next, err := s.LoadBefore(bg, 5, t3); err != nil || string(d) != "b" || next != t3 {
		t.Errorf("loadBefore the deletion: %q %s %v", d, next, err)
	}
	if s.Len() != 2 {
		t.Errorf("deleted oid left the index: len %d", s.Len())
	}
	// checkCurrentSerial of an oid the file never held fails the vote
	// with POSKeyError, as in Python's FileStorage (checked with ZODB
	// 6.4), not a conflict; a deleted object is checked against its
	// deletion.
	for _, c := range []struct {
		oid    zodb.Oid
		serial zodb.Tid
		want   error
	}{{77, t1, zodb.ErrNotFound}, {5, t3, nil}, {5, t2, zodb.ErrConflict}} {
		tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.CheckCurrentSerial(c.oid, c.serial); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(bg); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("checkCurrentSerial(%s, %s): vote = %v, want %v", c.oid, c.serial, err, c.want)
		}
		tx.Abort()
	}
}

func TestBeginOptions(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	want := zodb.MakeTid(2020, 1, 1, 0, 0, 0)
	tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{Tid: want, Status: zodb.StatusPacked})
	if err != nil {
		t.Fatal(err)
	}
	tx.Store(0, 0, []byte("x"))
	tx.Vote(bg)
	if got, err := tx.Finish(bg); err != nil || got != want {
		t.Fatalf("finish = %s %v", got, err)
	}
	if _, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{Tid: want}); !errors.Is(err, zodb.ErrTransaction) {
		t.Errorf("begin with an old tid: %v", err)
	}
	long := zodb.TxnMeta{Description: make([]byte, zodb.MaxMetaLen+1)}
	if _, err := s.Begin(bg, long, zodb.BeginOptions{}); err == nil {
		t.Errorf("begin with a too long description succeeded")
	}
	// The commit lock: a second Begin waits until the first ends.
	tx, err = s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second begin: %v", err)
	}
	tx.Abort()
	tx.Abort()
	tx, err = s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	it, _ := s.Iterate(bg, 0, zodb.MaxTid)
	info, err := it.Next(bg)
	if err != nil || info.Status != zodb.StatusPacked || info.Tid != want {
		t.Errorf("iterate: %+v %v", info, err)
	}
}

func TestAbortAfterVoteTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("a")})
	size := fileSize(t, path)
	tx, _ := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	tx.Store(1, 0, []byte("bbbb"))
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	if fileSize(t, path) <= size {
		t.Fatal("vote wrote nothing")
	}
	tx.Abort()
	if got := fileSize(t, path); got != size {
		t.Errorf("size after abort %d, want %d", got, size)
	}
	if _, _, err := s.Load(bg, 1); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("aborted store visible: %v", err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestReopenUsesSavedIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var last zodb.Tid
	serial := map[zodb.Oid]zodb.Tid{}
	for i := range 20 {
		var ws []stWrite
		for j := range 3 {
			oid := zodb.Oid(i*2 + j)
			ws = append(ws, stWrite{oid, serial[oid], fmt.Appendf(nil, "data %d %d", i, j)})
		}
		last = stCommit(t, s, ws...)
		for _, w := range ws {
			serial[w.oid] = last
		}
	}
	want := map[zodb.Oid]string{}
	for oid := range serial {
		d, _ := stLoad(t, s, oid)
		want[oid] = string(d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pos, idx, err := fs.ReadIndexFile(path + ".index")
	if err != nil || pos != fileSize(t, path) || idx.Len() != len(serial) {
		t.Fatalf("saved index: pos %d len %d err %v", pos, idx.Len(), err)
	}
	var logs bytes.Buffer
	s2 := stOpen(t, path, fs.Options{ReadOnly: true, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if !strings.Contains(logs.String(), "using the saved index") {
		t.Errorf("the reopen did not use the saved index:\n%s", &logs)
	}
	if s2.LastTransaction() != last || s2.Len() != len(serial) {
		t.Errorf("reopen: last %s len %d", s2.LastTransaction(), s2.Len())
	}
	for oid, w := range want {
		if d, ser := stLoad(t, s2, oid); string(d) != w || ser != serial[oid] {
			t.Errorf("oid %s: %q %s", oid, d, ser)
		}
	}
	// A rebuilt index equals the saved one.
	os.Remove(path + ".index")
	s2.Close()
	s3 := stOpen(t, path, fs.Options{})
	s3.Close()
	pos2, idx2, err := fs.ReadIndexFile(path + ".index")
	if err != nil || pos2 != pos || idx2.Len() != idx.Len() {
		t.Fatalf("rebuilt index: %d %d %v", pos2, idx2.Len(), err)
	}
	idx.Range(func(oid zodb.Oid, p int64) bool {
		if q, _ := idx2.Get(oid); q != p {
			t.Errorf("oid %s: saved %d rebuilt %d", oid, p, q)
		}
		return true
	})
}

func TestLockedAndReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("a")})
	if _, err := fs.Open(path, fs.Options{}); !errors.Is(err, zodb.ErrLocked) {
		t.Errorf("second read-write open: %v", err)
	}
	ro := stOpen(t, path, fs.Options{ReadOnly: true})
	if _, err := ro.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrReadOnly) {
		t.Errorf("begin on read-only: %v", err)
	}
	if _, err := ro.NewOid(bg); !errors.Is(err, zodb.ErrReadOnly) {
		t.Errorf("new oid on read-only: %v", err)
	}
	s.Close()
	if _, _, err := s.Load(bg, 0); !errors.Is(err, zodb.ErrClosed) {
		t.Errorf("load after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := s.Pack(bg, time.Now()); !errors.Is(err, zodb.ErrNotSupported) {
		t.Errorf("pack: %v", err)
	}
}

func TestFS21(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(path, []byte("FS21"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(path, fs.Options{}); !errors.Is(err, fs.ErrFS21ReadWrite) {
		t.Errorf("read-write FS21: %v", err)
	}
	stOpen(t, path, fs.Options{ReadOnly: true})
	if err := os.WriteFile(path, []byte("XXXX"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(path, fs.Options{ReadOnly: true}); !errors.Is(err, fs.ErrBadMagic) {
		t.Errorf("bad magic: %v", err)
	}
}

func TestConcurrentLoadsDuringCommits(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	tid := stCommit(t, s, stWrite{0, 0, []byte("v0")})
	done := make(chan struct{})
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				d, _, err := s.Load(bg, 0)
				if err != nil || !bytes.HasPrefix(d, []byte("v")) {
					errc <- fmt.Errorf("load: %q %v", d, err)
					return
				}
			}
		}()
	}
	for i := 1; i < 50; i++ {
		tid = stCommit(t, s, stWrite{0, tid, fmt.Appendf(nil, "v%d", i)})
	}
	close(done)
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEmptyFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ro := stOpen(t, path, fs.Options{ReadOnly: true})
	it, err := ro.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(bg); err != io.EOF {
		t.Errorf("iterate an empty file: %v", err)
	}
	if _, _, err := ro.Load(bg, 0); !errors.Is(err, zodb.ErrNotFound) {
		t.Errorf("load from an empty file: %v", err)
	}
	ro.Close()
	s := stOpen(t, path, fs.Options{})
	s.Close()
	if b, _ := os.ReadFile(path); string(b) != "FS30" {
		t.Errorf("empty file opened read-write holds %q", b)
	}
	if log, err := s.UndoLog(bg, 0, 10, nil); err == nil || len(log) != 0 {
		t.Errorf("undo log after close: %v", err)
	}
}

func TestFirstTxnMeta(t *testing.T) {
	s := stOpen(t, filepath.Join(t.TempDir(), "Data.fs"), fs.Options{})
	if info, err := s.FirstTxnMeta(bg); err != nil || info != nil {
		t.Fatalf("empty storage: %v, %v", info, err)
	}
	tx, err := s.Begin(bg, zodb.TxnMeta{User: []byte("u"), Description: []byte("first"), Extension: []byte("x")}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Store(1, 0, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	first, err := tx.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	stCommit(t, s)
	info, err := s.FirstTxnMeta(bg)
	if err != nil || info == nil {
		t.Fatalf("FirstTxnMeta: %v, %v", info, err)
	}
	if info.Tid != first || string(info.User) != "u" || string(info.Description) != "first" ||
		string(info.Extension) != "x" || info.Pos != fs.MagicSize || info.Records != nil {
		t.Fatalf("FirstTxnMeta = %+v", info)
	}
}

// An index entry that points at a damaged record (another oid, a length
// past the transaction) makes Load fail with the record's offset, on the mapped
// fast path as on the general one; it never returns another record's data.
func TestLoadDamagedRecord(t *testing.T) {
	txns := synthHistory(12)
	f := synthBuild(txns)
	for _, c := range []struct {
		name  string
		field int64 // offset inside the data record header
		want  string
	}{
		{"other oid", 7, "oid"},
		{"length past the committed data", 34, "malformed"},
		// 64 bytes more: inside the file, past the record's transaction.
		{"length past the transaction", 41, "past the end of its transaction"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := synthWrite(t, f.Bytes)
			s := stOpen(t, path, fs.Options{ReadOnly: true})
			oid := txns[9].Recs[0].Oid
			if _, _, err := s.Load(bg, oid); err != nil {
				t.Fatal(err)
			}
			// Damage the record the index points at under the open storage
			// (a disk going bad), in place.
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			pos := f.RecPos[9][0] + c.field
			damaged := f.Bytes[pos] ^ 0x40
			if c.field == 41 { // the length's last byte
				damaged = f.Bytes[pos] + 64
				if damaged < f.Bytes[pos] {
					t.Fatal("the test's record length does not take 64 more in its last byte")
				}
			}
			if _, err := w.WriteAt([]byte{damaged}, pos); err != nil {
				t.Fatal(err)
			}
			w.Close()
			data, _, err := s.Load(bg, oid)
			var re *fs.RecordError
			if !errors.As(err, &re) || re.Pos != f.RecPos[9][0] || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load of a damaged record: %q, %v; want a RecordError at %d about %s", data, err, f.RecPos[9][0], c.want)
			}
		})
	}
}

// A record reached through an undo's backpointer whose length runs past
// its own transaction (and into the next) makes Load fail; it never
// returns the bytes after the record.
func TestLoadDamagedBackpointerTarget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	t1 := stCommit(t, s, stWrite{1, 0, []byte("a1")})
	t2 := stCommit(t, s, stWrite{1, t1, []byte("a2")})
	if _, _, err := unUndo(t, s, t2); err != nil {
		t.Fatal(err)
	}
	if d, _ := stLoad(t, s, 1); string(d) != "a1" {
		t.Fatalf("after the undo: %q", d)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	target := bytes.Index(b, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1), uint64(t1)))
	if target < 0 {
		t.Fatal("t1's record of oid 1 not found")
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	plen := binary.BigEndian.Uint64(b[target+34:])
	if _, err := w.WriteAt(binary.BigEndian.AppendUint64(nil, plen+64), int64(target)+34); err != nil {
		t.Fatal(err)
	}
	data, _, err := s.Load(bg, 1)
	var re *fs.RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "past the end of its transaction") {
		t.Fatalf("load through a backpointer to a damaged record: %q, %v", data, err)
	}
}

// AppendLoadBefore gives what LoadBefore gives, after the caller's bytes
// (left as they were when it fails): current and old revisions, a
// backpointer left by an undo, a deletion, no revision before, an
// unknown oid.
func TestAppendLoadBefore(t *testing.T) {
	s := stOpen(t, "", fs.Options{})
	const a, b = zodb.Oid(1), zodb.Oid(2)
	t1 := stCommit(t, s, stWrite{a, 0, []byte("a1")}, stWrite{b, 0, bytes.Repeat([]byte("b"), 5000)})
	t2 := stCommit(t, s, stWrite{a, t1, []byte("a2")})
	tx, err := s.Begin(bg, zodb.TxnMeta{}, zodb.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Undo(bg, t2); err != nil { // a's record: a backpointer to a1
		t.Fatal(err)
	}
	if err := tx.Vote(bg); err != nil {
		t.Fatal(err)
	}
	t3, err := tx.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	t4 := stCommit(t, s, stWrite{b, t1, nil})
	// What LoadBefore must give: data, serial, next; no entry, an error
	// (no revision before, or not found).
	type rev struct {
		data         string
		serial, next zodb.Tid
	}
	bs := strings.Repeat("b", 5000)
	want := map[[2]zodb.Tid]rev{
		{zodb.Tid(a), t2}: {"a1", t1, t2}, {zodb.Tid(a), t3}: {"a2", t2, t3},
		{zodb.Tid(a), t4}: {"a1", t3, 0}, {zodb.Tid(a), zodb.MaxTid}: {"a1", t3, 0}, // through the undo's backpointer
		{zodb.Tid(b), t2}: {bs, t1, t4}, {zodb.Tid(b), t3}: {bs, t1, t4}, {zodb.Tid(b), t4}: {bs, t1, t4},
	}
	prefix := []byte("prefix:")
	for _, oid := range []zodb.Oid{a, b, 7} {
		for _, before := range []zodb.Tid{t1, t2, t3, t4, zodb.MaxTid} {
			data, serial, next, err := s.LoadBefore(bg, oid, before)
			out, aserial, anext, aerr := s.AppendLoadBefore(bg, bytes.Clone(prefix), oid, before)
			what := fmt.Sprintf("oid %s before %s", oid, before)
			if w, ok := want[[2]zodb.Tid{zodb.Tid(oid), before}]; !ok && !errors.Is(err, zodb.ErrNotFound) && !errors.Is(err, zodb.ErrNoRevision) {
				t.Fatalf("%s: %q %s %s %v, want no revision", what, data, serial, next, err)
			} else if ok && (err != nil || string(data) != w.data || serial != w.serial || next != w.next) {
				t.Fatalf("%s: %.20q %s %s %v, want %.20q %s %s", what, data, serial, next, err, w.data, w.serial, w.next)
			}
			if (err == nil) != (aerr == nil) || (err != nil && err.Error() != aerr.Error()) {
				t.Fatalf("%s: LoadBefore error %v, AppendLoadBefore error %v", what, err, aerr)
			}
			if err != nil {
				if !bytes.Equal(out, prefix) {
					t.Fatalf("%s: failed, but dst became %q", what, out)
				}
				continue
			}
			if !bytes.Equal(out, append(bytes.Clone(prefix), data...)) || aserial != serial || anext != next {
				t.Fatalf("%s: appended %q %s %s, LoadBefore %q %s %s", what, out, aserial, anext, data, serial, next)
			}
		}
	}
}

// A record header that reads as zeros (a page lost under the storage: the
// file cut or overwritten behind its back) is damage, not oid 0's record
// at offset 0.
func TestLoadZeroedRecordHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("the root object")})
	it, err := s.Iterate(bg, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := iterAll(t, it)
	if err != nil || len(infos) != 1 {
		t.Fatalf("%d transactions, %v", len(infos), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The record follows the transaction header and its metadata.
	recPos := infos[0].Pos + fs.TxnHeaderSize + int64(len(infos[0].User)+len(infos[0].Description)+len(infos[0].Extension))
	// Header and the 8 bytes after it: read as a record without data and
	// a zero backpointer, it would say the object was deleted.
	if _, err := f.WriteAt(make([]byte, fs.DataHeaderSize+8), recPos); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for what, call := range map[string]func() error{
		"load":    func() error { _, _, err := s.Load(bg, 0); return err },
		"history": func() error { _, err := s.History(bg, 0, 5); return err },
	} {
		var re *fs.RecordError
		if err := call(); !errors.As(err, &re) || re.Record != "data record" || re.Pos != recPos {
			t.Errorf("%s of a zeroed record header: %v, want the data record at %d named", what, err, recPos)
		}
	}
}
