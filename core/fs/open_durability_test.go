package fs_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
)

// The index is a cache of the file: when an open rebuilds it and cannot
// save it (here its temporary name is taken by a directory, as a full
// disk or a read-only directory would refuse it), the storage still
// opens, as Python's does, and serves every object.
func TestOpenSurvivesAnIndexItCannotSave(t *testing.T) {
	path := withoutIndex(t)
	if err := os.Mkdir(path+".index.index_tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	s2, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("open refused for want of an index save: %v", err)
	}
	defer s2.Close()
	if data, _, err := s2.Load(bg, 0); err != nil || string(data) != "root" {
		t.Fatalf("load: %q, %v", data, err)
	}
}

// Closing on a disk where the index cannot be saved (full) is no failed
// close: every commit is already in Data.fs, and the next open scans
// what the old index does not cover, as Python's close only logs it.
func TestCloseSurvivesAnIndexItCannotSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("root")})
	if err := os.Mkdir(path+".index.index_tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	t1 := stCommit(t, s, stWrite{1, 0, []byte("later")})
	if err := s.Close(); err != nil {
		t.Fatalf("close refused for want of an index save: %v", err)
	}
	if err := os.Remove(path + ".index.index_tmp"); err != nil {
		t.Fatal(err)
	}
	s2 := stOpen(t, path, fs.Options{})
	defer s2.Close()
	if data, serial := stLoad(t, s2, 1); string(data) != "later" || serial != t1 {
		t.Fatalf("after reopen: %q %s, want \"later\" %s", data, serial, t1)
	}
}

// An empty Data.fs (left by an open that created it and then failed to
// write its magic, on a full disk) gets its directory entry fsynced when
// an open fills it, even when no index save fsyncs the directory.
func TestOpenOfAnEmptyFileSyncsItsName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+".index.index_tmp", 0o755); err != nil {
		t.Fatal(err) // no index save
	}
	synced := 0
	fs.SetSyncDir(t, func(real func(string) error, d string) error {
		if d == dir {
			synced++
		}
		return real(d)
	})
	s := stOpen(t, path, fs.Options{})
	defer s.Close()
	if synced == 0 {
		t.Fatal("Data.fs's directory was never fsynced")
	}
}

// A process killed while its last transactions waited for their fsync
// leaves them marked committed, perhaps in the page cache only. The next
// read-write open serves them (to loads, iterators, replication), so it
// fsyncs Data.fs first, and before it saves an index that covers them.
func TestOpenFsyncsWhatItWillServe(t *testing.T) {
	path := withoutIndex(t)
	var mu sync.Mutex
	var synced []string
	fs.SetSyncFile(t, func(real func(*os.File) error, f *os.File) error {
		mu.Lock()
		synced = append(synced, filepath.Base(f.Name()))
		mu.Unlock()
		return real(f)
	})
	s2 := stOpen(t, path, fs.Options{})
	defer s2.Close()
	mu.Lock()
	defer mu.Unlock()
	data, index := -1, -1
	for i, name := range synced {
		switch {
		case name == "Data.fs" && data < 0:
			data = i
		case strings.HasPrefix(name, "Data.fs.index") && index < 0:
			index = i
		}
	}
	if data < 0 || index < 0 || data > index {
		t.Fatalf("fsyncs during the open: %q; want Data.fs before the index it saves", synced)
	}
}

// withoutIndex returns a closed Data.fs holding one object ("root", oid
// 0) whose Data.fs.index is gone, so that the next open rebuilds and
// saves it.
func withoutIndex(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	stCommit(t, s, stWrite{0, 0, []byte("root")})
	s.Close()
	if err := os.Remove(path + ".index"); err != nil {
		t.Fatal(err)
	}
	return path
}
