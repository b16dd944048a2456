package fs_test

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

func newOids(t *testing.T, s *fs.FileStorage, n int) []zodb.Oid {
	t.Helper()
	var out []zodb.Oid
	for range n {
		oid, err := s.NewOid(bg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, oid)
	}
	return out
}

// ZEO clients keep the new oids they fetched and did not use across a
// server restart. A reopened storage — after a clean close, or after a
// crash (here: a copy of the files taken while the storage was open) —
// must not hand them out again, or the clients' new objects conflict.
func TestNewOidsAreNotHandedOutTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("root")})
	var synced []string
	fs.SetSyncFile(t, func(real func(*os.File) error, f *os.File) error {
		synced = append(synced, filepath.Base(f.Name()))
		return real(f)
	})
	before := newOids(t, s, 3)
	if strings.Join(synced, " ") != "Data.fs.oid.tmp" {
		t.Fatalf("fsyncs before the first new oid was handed out: %q; want the oid record's", synced)
	}
	// A crash now: the files as they are on disk.
	crash := filepath.Join(t.TempDir(), "Data.fs")
	for _, suffix := range []string{"", ".oid"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crash+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := stOpen(t, crash, fs.Options{})
	if got := newOids(t, c, 1)[0]; got <= before[2] {
		t.Fatalf("after a crash, new oid %s; %v were handed out before it", got, before)
	}
	c.Close()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := stOpen(t, path, fs.Options{})
	after := newOids(t, s2, fs.OidBlock+1) // past the reserved block too
	if after[0] <= before[2] {
		t.Fatalf("after a reopen, new oid %s; %v were handed out before it", after[0], before)
	}
	for i := 1; i < len(after); i++ {
		if after[i] != after[i-1]+1 {
			t.Fatalf("new oids %s then %s", after[i-1], after[i])
		}
	}
	s2.Close()
	// Create starts a new database: the old record goes with it.
	s3 := stOpen(t, path, fs.Options{Create: true})
	defer s3.Close()
	if got := newOids(t, s3, 1)[0]; got != 1 {
		t.Fatalf("first new oid of a created database: %s", got)
	}
}

// The record is a hint: a damaged one is a warning, and oids continue
// after the greatest in the file, as Python's do.
func TestDamagedOidRecordIsIgnored(t *testing.T) {
	for _, content := range []string{"not hex\n", "ffffffffffffffff\n"} {
		path := filepath.Join(t.TempDir(), "Data.fs")
		s := stOpen(t, path, fs.Options{})
		stCommit(t, s, stWrite{5, 0, []byte("five")})
		s.Close()
		if err := os.WriteFile(path+".oid", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s2 := stOpen(t, path, fs.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if got := newOids(t, s2, 1)[0]; got != 6 {
			t.Errorf("record %q: new oid %s, want 6", content, got)
		}
		if !strings.Contains(logs.String(), "ignoring the record of oids handed out") {
			t.Errorf("record %q: no warning in %s", content, logs.String())
		}
		s2.Close()
	}
}

// A stored oid near the end of the oid space (a client may store any oid)
// leaves a short last block: new oids go up to the greatest and then
// fail, never wrapping around to the root's oid 0.
func TestNewOidsAtTheEndOfTheOidSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	defer s.Close()
	const last = zodb.Oid(math.MaxUint64)
	stCommit(t, s, stWrite{last - 3, 0, []byte("near the end")})
	if got := newOids(t, s, 3); got[0] != last-2 || got[2] != last {
		t.Fatalf("new oids %v, want up to %s", got, last)
	}
	if oid, err := s.NewOid(bg); err == nil {
		t.Fatalf("new oid %s past the last", oid)
	}
}

// Oids handed out from the short last block (ending at the greatest oid)
// are not handed out again after a reopen: the record's plausibility
// bound must not overflow there.
func TestOidRecordAtTheEndSurvivesAReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	const last = zodb.Oid(math.MaxUint64)
	stCommit(t, s, stWrite{last - 3, 0, []byte("near the end")})
	before := newOids(t, s, 1)[0] // last-2; the block reserved ends at last
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s2 := stOpen(t, path, fs.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	got, err := s2.NewOid(bg)
	if err == nil && got <= before {
		t.Fatalf("after a reopen, new oid %s; %s was handed out before it\nlog: %s", got, before, logs.String())
	}
}

// SkipOids (a promotion) moves new oids n past everything the storage
// holds or reserved, durably, and stops at the last oid near the end.
func TestSkipOids(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{9, 0, []byte("nine")})
	if err := s.SkipOids(1000); err != nil {
		t.Fatal(err)
	}
	if got := newOids(t, s, 1)[0]; got != 1010 {
		t.Fatalf("new oid after skipping 1000 past 9: %s", got)
	}
	s.Close()
	s = stOpen(t, path, fs.Options{})
	defer s.Close()
	if got := newOids(t, s, 1)[0]; got <= 1010 {
		t.Fatalf("after a reopen, new oid %s", got)
	}
	stCommit(t, s, stWrite{zodb.Oid(math.MaxUint64 - 5), 0, []byte("near the end")})
	if err := s.SkipOids(1 << 24); err != nil {
		t.Fatal(err)
	}
	if oid, err := s.NewOid(bg); err == nil {
		t.Fatalf("new oid %s past the last", oid)
	}
}

// A secondary notes its primary's reservation (NoteOidReservation): as a
// primary later — promoted, or reopened — it hands out oids past it only,
// and reports it to its own secondaries (OidReservation) one block ahead,
// so that they know of a block's oids before they are handed out. A lower
// note changes nothing.
func TestNoteOidReservation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{7, 0, []byte("seven")})
	// The greatest oid counts rounded up to a block, so that commits of
	// explicit oids change the reservation once a block.
	if got := s.OidReservation(); got != 2*fs.OidBlock-1 {
		t.Fatalf("reservation of a storage that handed out nothing, greatest oid 7: %s", got)
	}
	stCommit(t, s, stWrite{100, 0, []byte("a hundred")})
	if got := s.OidReservation(); got != 2*fs.OidBlock-1 {
		t.Fatalf("reservation after a commit of oid 100: %s", got)
	}
	if got := newOids(t, s, 1)[0]; got != 101 || s.OidReservation() != 100+2*fs.OidBlock {
		t.Fatalf("new oid %s, then reservation %s: want 101, one block reserved and one ahead", got, s.OidReservation())
	}
	if err := s.NoteOidReservation(50_000); err != nil {
		t.Fatal(err)
	}
	if err := s.NoteOidReservation(40_000); err != nil {
		t.Fatal(err)
	}
	if got := s.OidReservation(); got != 50_000+fs.OidBlock {
		t.Fatalf("reservation after notes of 50000 and 40000: %s", got)
	}
	if err := s.NoteOidReservation(math.MaxUint64); err == nil || s.OidReservation() != 50_000+fs.OidBlock {
		t.Fatalf("a note of the last oid, 2^64 past the greatest here: %v, reservation %s", err, s.OidReservation())
	}
	s.Close()
	s = stOpen(t, path, fs.Options{})
	if got := s.OidReservation(); got != 50_000+fs.OidBlock {
		t.Fatalf("reservation after a reopen: %s", got)
	}
	if got := newOids(t, s, 1)[0]; got != 50_001 {
		t.Fatalf("new oid after a note of 50000 and a reopen: %s", got)
	}
	if got := s.OidReservation(); got <= 50_001 {
		t.Fatalf("reservation after handing out 50001: %s", got)
	}
	if err := s.SkipOids(1000); err != nil {
		t.Fatal(err)
	}
	// Past the block reserved from 50001 on, and 1000 more.
	if got, want := newOids(t, s, 1)[0], zodb.Oid(50_000+fs.OidBlock+1000+1); got != want {
		t.Fatalf("new oid after a skip of 1000: %s, want %s", got, want)
	}
	s.Close()
	ro := stOpen(t, path, fs.Options{ReadOnly: true})
	defer ro.Close()
	if err := ro.NoteOidReservation(1 << 30); err == nil {
		t.Fatal("a read-only storage recorded a reservation")
	}
}
