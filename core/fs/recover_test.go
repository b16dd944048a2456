package fs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// rcBuild writes a small database and returns its bytes and the offset of
// its last transaction.
func rcBuild(t *testing.T) ([]byte, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t1 := stCommit(t, s, stWrite{0, 0, []byte("root")}, stWrite{1, 0, []byte("one")})
	stCommit(t, s, stWrite{0, t1, []byte("root2")})
	last := s.CommittedEnd()
	stCommit(t, s, stWrite{1, t1, []byte("one-b")}, stWrite{2, 0, []byte("two")})
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, last
}

// rcOpen writes content to a fresh Data.fs, opens it with opts and returns
// the path, the storage (nil on error) and the error.
func rcOpen(t *testing.T, content []byte, opts fs.Options) (string, *fs.FileStorage, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := fs.Open(path, opts)
	if s != nil {
		t.Cleanup(func() { s.Close() })
	}
	return path, s, err
}

// TestCrashTruncation cuts the file at every offset inside the last
// transaction: a read-write open must cut it back to the transaction start,
// saving the tail to Data.fs.tr0 unless only a torn header (< 23 bytes) was
// left (spec §6.1).
func TestCrashTruncation(t *testing.T) {
	full, last := rcBuild(t)
	for cut := last + 1; cut < int64(len(full)); cut++ {
		path, s, err := rcOpen(t, full[:cut], fs.Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		s.Close()
		if got := fileSize(t, path); got != last {
			t.Fatalf("cut %d: size %d, want %d", cut, got, last)
		}
		tr, err := os.ReadFile(path + ".tr0")
		torn := cut-last < fs.TxnHeaderSize
		switch {
		case torn && err == nil:
			t.Fatalf("cut %d: torn header saved to .tr0", cut)
		case !torn && (err != nil || !bytes.Equal(tr, full[last:cut])):
			t.Fatalf("cut %d: .tr0 = %d bytes, %v", cut, len(tr), err)
		}
		if s2 := stOpen(t, path, fs.Options{}); s2.Len() != 2 {
			t.Fatalf("cut %d: reopened with %d objects", cut, s2.Len())
		}
	}
}

func TestCheckpointStatusIsCut(t *testing.T) {
	full, last := rcBuild(t)
	b := bytes.Clone(full)
	b[last+16] = 'c'
	// Read-only: the 'c' transaction is ignored, the file untouched.
	path, ro, err := rcOpen(t, b, fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if ro.CommittedEnd() != last || ro.Len() != 2 {
		t.Errorf("read-only: end %d len %d", ro.CommittedEnd(), ro.Len())
	}
	ro.Close()
	if fileSize(t, path) != int64(len(b)) {
		t.Errorf("read-only open changed the file")
	}
	// Read-write: cut and saved; a second cut goes to .tr1.
	s := stOpen(t, path, fs.Options{})
	s.Close()
	tr0, _ := os.ReadFile(path + ".tr0")
	if fileSize(t, path) != last || !bytes.Equal(tr0, b[last:]) {
		t.Errorf("read-write: size %d, tr0 %d bytes", fileSize(t, path), len(tr0))
	}
	os.WriteFile(path, b, 0o644)
	os.Remove(path + ".index")
	stOpen(t, path, fs.Options{}).Close()
	if _, err := os.Stat(path + ".tr1"); err != nil {
		t.Errorf("second truncation: %v", err)
	}
}

// An open that cannot save the unfinished tail (here its fsync fails, as
// a full disk fails the copy) refuses to cut it, and removes its partial
// copy: retried opens (a service manager restarting zrs) must not leave a
// .trN each, and the one that succeeds saves to .tr0.
func TestFailedTailSaveLeavesNoCopy(t *testing.T) {
	full, last := rcBuild(t)
	b := bytes.Clone(full)
	b[last+16] = 'c'
	failing := true
	fs.SetSyncFile(t, func(real func(*os.File) error, f *os.File) error {
		if failing && filepath.Ext(f.Name()) == ".tr0" {
			return errDisk
		}
		return real(f)
	})
	path, _, err := rcOpen(t, b, fs.Options{})
	for range 3 {
		if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes from offset %d", len(b)-int(last), last)) {
			t.Fatalf("open with a tail it cannot save: %v", err)
		}
		if trs, _ := filepath.Glob(path + ".tr*"); len(trs) != 0 {
			t.Fatalf("the failed save left %v", trs)
		}
		if fileSize(t, path) != int64(len(b)) {
			t.Fatal("the tail was cut without a copy")
		}
		_, err = fs.Open(path, fs.Options{})
	}
	failing = false
	stOpen(t, path, fs.Options{}).Close()
	trs, _ := filepath.Glob(path + ".tr*")
	if tr0, _ := os.ReadFile(path + ".tr0"); len(trs) != 1 || !bytes.Equal(tr0, b[last:]) {
		t.Fatalf("after the failures, %v (tr0 %d bytes)", trs, len(tr0))
	}
}

// TestGarbageTail appends data whose transaction length is shorter than a
// header: cut off when the file's last 8 bytes are not a plausible trailer,
// an error when they are.
func TestGarbageTail(t *testing.T) {
	full, _ := rcBuild(t)
	junk := append(bytes.Clone(full), bytes.Repeat([]byte{1}, 30)...)
	binary.BigEndian.PutUint64(junk[len(full)+8:], 5) // tlen 5
	path, s, err := rcOpen(t, junk, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fileSize(t, path) != int64(len(full)) {
		t.Errorf("junk not cut: size %d", fileSize(t, path))
	}
	// Damage the length of a transaction in the middle so that it is
	// shorter than its header while the file ends with a good trailer.
	bad := bytes.Clone(full)
	binary.BigEndian.PutUint64(bad[4+8:], 5)
	_, _, err = rcOpen(t, bad, fs.Options{})
	var re *fs.RecordError
	if !errors.As(err, &re) || re.Pos != 4 {
		t.Errorf("short transaction length in the middle: %v", err)
	}
}

// TestDamagedMiddle gives a *RecordError with the offset, never a panic.
func TestDamagedMiddle(t *testing.T) {
	full, last := rcBuild(t)
	cases := map[string]func(b []byte){
		"trailer":   func(b []byte) { b[last-1] ^= 0xff },
		"tloc":      func(b []byte) { b[4+23+5+4+24+7] ^= 1 }, // first record's tloc
		"plen huge": func(b []byte) { binary.BigEndian.PutUint64(b[4+23+5+4+34:], 1<<40) },
		"version":   func(b []byte) { b[4+23+5+4+33] = 1 },
	}
	for name, damage := range cases {
		b := bytes.Clone(full)
		damage(b)
		for _, ro := range []bool{false, true} {
			_, _, err := rcOpen(t, b, fs.Options{ReadOnly: ro})
			var re *fs.RecordError
			if !errors.As(err, &re) || re.Pos <= 0 || re.Pos >= last {
				t.Errorf("%s (ro=%v): %v", name, ro, err)
			}
		}
	}
}

// TestStaleIndexIsRebuilt: an index that does not match the file is
// ignored, and one that does is used (with the rest scanned).
func TestStaleIndexIsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	var serial zodb.Tid
	for i := range 10 {
		serial = stCommit(t, s, stWrite{0, serial, fmt.Appendf(nil, "root %d", i)})
	}
	s.Close()
	good, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	_, idx, err := fs.ReadIndexFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	// Wrong position for oid 0: rebuilt, and the load is right.
	idx.Set(0, 4+23)
	if err := fs.WriteIndexFile(path+".index", fileSize(t, path), idx); err != nil {
		t.Fatal(err)
	}
	s = stOpen(t, path, fs.Options{ReadOnly: true})
	if d, _ := stLoad(t, s, 0); string(d) != "root 9" {
		t.Errorf("stale index used: %q", d)
	}
	s.Close()
	// An older (valid) index: the transactions after it are found by the
	// catch-up scan.
	s = stOpen(t, path, fs.Options{})
	_, cur, _ := s.Load(bg, 0)
	stCommit(t, s, stWrite{0, cur, []byte("root 10")})
	stCommit(t, s, stWrite{7, 0, []byte("seven")})
	s.Close()
	os.WriteFile(path+".index", good, 0o644)
	var logs bytes.Buffer
	s = stOpen(t, path, fs.Options{ReadOnly: true, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if !strings.Contains(logs.String(), "using the saved index") {
		t.Errorf("the older index was not used:\n%s", &logs)
	}
	if d, _ := stLoad(t, s, 0); string(d) != "root 10" || s.Len() != 2 {
		t.Errorf("after catch-up: %q, %d objects", d, s.Len())
	}
}

// TestNewTidAfterCutTransaction: a tid cut off by recovery is not reused.
func TestNewTidAfterCutTransaction(t *testing.T) {
	full, last := rcBuild(t)
	cutTid := zodb.Tid(binary.BigEndian.Uint64(full[last:]))
	future := cutTid + 1<<40 // far ahead of the clock
	b := bytes.Clone(full)
	binary.BigEndian.PutUint64(b[last:], uint64(future))
	b[last+16] = 'c'
	_, s, err := rcOpen(t, b, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.LastTransaction() >= cutTid {
		t.Errorf("last transaction %s includes the cut one", s.LastTransaction())
	}
	if tid := stCommit(t, s, stWrite{5, 0, []byte("x")}); tid <= future {
		t.Errorf("new tid %s not after the cut tid %s", tid, future)
	}
}

// A read-write open that scans far past the saved index (the daemon died
// without closing after committing a lot) saves the index, so that the
// next open does not scan the same bytes again; a short scan does not.
func TestLongForwardScanSavesIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, make([]byte, 200)}) // an index below 100 bytes is not trusted
	s.Close()
	old, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	indexPos := func() int64 {
		pos, _, err := fs.ReadIndexFile(path + ".index")
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	oldPos := indexPos()
	big := make([]byte, 8<<20)
	for _, tc := range []struct {
		mib   int
		saved bool
	}{{24, false}, {72, true}} {
		s = stOpen(t, path, fs.Options{})
		for i := range tc.mib / 8 {
			stCommit(t, s, stWrite{zodb.Oid(i + 1 + tc.mib), 0, big})
		}
		s.Close()
		if err := os.WriteFile(path+".index", old, 0o644); err != nil { // as if it had died
			t.Fatal(err)
		}
		s = stOpen(t, path, fs.Options{})
		want := oldPos
		if tc.saved {
			want = fileSize(t, path)
		}
		if pos := indexPos(); pos != want {
			t.Errorf("%d MiB past the saved index: the open left it at %d, want %d", tc.mib, pos, want)
		}
		s.Close()
		if err := os.WriteFile(path+".index", old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// An index that points an object at another's record anywhere in the
// file (not only in the last transaction, which Python's check reads) is
// rebuilt at the open, saying so, rather than making loads report damage
// in a sound Data.fs.
func TestIndexPointingAtOtherRecordsIsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	const objects = 20 // fewer than the sample: every entry is checked
	for i := range objects {
		stCommit(t, s, stWrite{zodb.Oid(i), 0, fmt.Appendf(nil, "object %d", i)})
	}
	s.Close()
	_, idx, err := fs.ReadIndexFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := idx.Get(1)
	p2, _ := idx.Get(2)
	idx.Set(1, p2)
	idx.Set(2, p1)
	if err := fs.WriteIndexFile(path+".index", fileSize(t, path), idx); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	s = stOpen(t, path, fs.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer s.Close()
	for _, oid := range []zodb.Oid{1, 2} {
		if d, _ := stLoad(t, s, oid); string(d) != fmt.Sprintf("object %d", oid) {
			t.Errorf("oid %d: loaded %q through the swapped index", oid, d)
		}
	}
	if !strings.Contains(logs.String(), "index does not match the file (it points an object at another's record), rebuilding it") {
		t.Errorf("the rebuild was not logged:\n%s", logs)
	}
}
