package fs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

func TestMapReaderFollowsGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := bytes.Repeat([]byte("a"), 100)
	if _, err := f.WriteAt(first, 0); err != nil {
		t.Fatal(err)
	}
	r := newMapReader(f, 100)
	defer r.Close()
	got := make([]byte, 100)
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("mapped read: %q, %v", got, err)
	}
	// Bytes appended after the mapping was made are readable through it
	// once the limit is raised, and by pread before that.
	second := bytes.Repeat([]byte("b"), 50)
	if _, err := f.WriteAt(second, 100); err != nil {
		t.Fatal(err)
	}
	tail := make([]byte, 50)
	if _, err := r.ReadAt(tail, 100); err != nil || !bytes.Equal(tail, second) {
		t.Fatalf("read above the limit: %q, %v", tail, err)
	}
	r.ensure(150)
	clear(tail)
	if _, err := r.ReadAt(tail, 100); err != nil || !bytes.Equal(tail, second) {
		t.Fatalf("read after ensure: %q, %v", tail, err)
	}
	// Past the end of the file: pread's EOF, never a fault.
	if _, err := r.ReadAt(make([]byte, 10), 145); !errors.Is(err, io.EOF) {
		t.Fatalf("read past EOF: %v", err)
	}
}

func TestMapReaderRemapsAndCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(10); err != nil {
		t.Fatal(err)
	}
	r := newMapReader(f, 10)
	size := int64(minMapLen + 4096) // forces a second, larger mapping
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), size-3); err != nil {
		t.Fatal(err)
	}
	r.ensure(size)
	if len(r.data) < int(size) || len(r.old) != 1 {
		t.Fatalf("mapping %d bytes, %d old mappings", len(r.data), len(r.old))
	}
	got := make([]byte, 3)
	if _, err := r.ReadAt(got, size-3); err != nil || string(got) != "end" {
		t.Fatalf("read at the end: %q %v", got, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	// After Close reads fall back to the file.
	if _, err := r.ReadAt(got, size-3); err != nil || string(got) != "end" {
		t.Fatalf("read after close: %q %v", got, err)
	}
}

// A load that loses a race with Close gets zodb.ErrClosed, not an error
// that reads as a damaged record.
func TestReadAfterCloseSaysClosed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "Data.fs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rd := s.rd // what a load still holds when Close runs
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.ReadAt(make([]byte, 4), 0); !errors.Is(err, zodb.ErrClosed) {
		t.Fatalf("read after Close: %v, want zodb.ErrClosed", err)
	}
}
