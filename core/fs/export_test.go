package fs

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
