package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/zrs-replication/zrs/core/zodb"
)

// LockFile is an exclusive lock on a storage, taken on Data.fs.lock the way
// zc.lockfile (and so Python ZODB) takes it: a BSD flock, which Linux keeps
// apart from POSIX fcntl locks, so zrs and ZODB processes exclude each
// other only because both use flock on the same path.
//
// The lock belongs to the open file, not to the process: two LockFileFor
// calls on the same path exclude each other even within one process. The
// descriptor is close-on-exec, so child processes do not inherit it.
type LockFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed; guarded by mu
}

// LockError says that another process holds a storage's lock file.
type LockError struct {
	Path string // the lock file
	Pid  int    // the holder's pid as written in the file, 0 if unknown
}

func (e *LockError) Error() string {
	who := "another process"
	if e.Pid != 0 {
		who = "pid " + strconv.Itoa(e.Pid)
	}
	return fmt.Sprintf("%s: locked by %s: another zrs or ZODB process has this storage open; stop it first",
		e.Path, who)
}

// Unwrap makes errors.Is(err, zodb.ErrLocked) true.
func (e *LockError) Unwrap() error { return zodb.ErrLocked }

// LockFileFor locks path (Data.fs.lock) exclusively without waiting. The
// file is created if missing and never truncated before the lock is held;
// once it is, its content becomes " <pid>\n" like zc.lockfile's, for
// operators. The content is written but not fsynced: the lock lives in the
// kernel, and after a crash the stale pid is harmless.
//
// Errors: *LockError (wrapping zodb.ErrLocked) if another open file holds
// the lock; otherwise the I/O error.
func LockFileFor(path string) (*LockFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("%w (uid %d: the storage's directory must be writable by the user zrs runs as, "+
			"which writes its .lock, .index and .trN files beside Data.fs)", err, os.Getuid())
	}
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockError{Path: path, Pid: readLockPid(f)}
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	if err := writeLockPid(f); err != nil {
		_ = flock(f, syscall.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("%s: writing pid: %w", path, err)
	}
	return &LockFile{path: path, f: f}, nil
}

// Path returns the lock file's path.
func (l *LockFile) Path() string { return l.path }

// Close releases the lock and closes the file; the file is left in place,
// as zc.lockfile leaves it. Close is idempotent and safe for concurrent use.
func (l *LockFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	err := flock(f, syscall.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: unlock: %w", l.path, err)
	}
	return nil
}

// flock applies a BSD lock operation, retrying if a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// writeLockPid replaces the file's content with " <pid>\n".
func writeLockPid(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(" "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readLockPid returns the pid a lock holder wrote, 0 if there is none (the
// holder may not have written it yet).
func readLockPid(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
