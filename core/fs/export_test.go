package fs

import "os"

// SetSyncFile replaces the fsync(2) every storage's commits end with, for
// the test's duration; fn gets the real one to call.
func SetSyncFile(t interface{ Cleanup(func()) }, fn func(real func(*os.File) error, f *os.File) error) {
	real := syncFile
	syncFile = func(f *os.File) error { return fn(real, f) }
	t.Cleanup(func() { syncFile = real })
}

// SetFsync replaces the fsync of s's commits with fn, which gets the real
// one to call (tests hold an fsync open to see what happens meanwhile).
func SetFsync(s *FileStorage, fn func(real func() error) error) {
	real := s.fsync
	s.fsync = func() error { return fn(real) }
}

// SetWriteAt replaces a commit's writes to Data.fs (a vote's bytes, the
// status byte at finish) with fn, which gets the real one to call (tests
// pause or fail them).
func SetWriteAt(s *FileStorage, fn func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error)) {
	real := s.writeAt
	s.writeAt = func(p []byte, off int64) (int, error) { return fn(real, p, off) }
}

// SetCut replaces the truncation of Data.fs after a failed vote or an
// abort with fn, which gets the real one to call.
func SetCut(s *FileStorage, fn func(real func(int64) error, size int64) error) {
	real := s.cut
	s.cut = func(size int64) error { return fn(real, size) }
}

// SetSyncDir replaces the fsync(2) of a directory (after a file is created
// or renamed in it) for the test's duration; fn gets the real one to call.
func SetSyncDir(t interface{ Cleanup(func()) }, fn func(real func(string) error, dir string) error) {
	real := syncDir
	syncDir = func(dir string) error { return fn(real, dir) }
	t.Cleanup(func() { syncDir = real })
}

// OidBlock is how many oids NewOid reserves at a time.
const OidBlock = oidBlock
