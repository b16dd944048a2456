package fs

// SetFsync replaces the fsync of s's commits with fn, which gets the real
// one to call (tests hold an fsync open to see what happens meanwhile).
func SetFsync(s *FileStorage, fn func(real func() error) error) {
	real := s.fsync
	s.fsync = func() error { return fn(real) }
}
