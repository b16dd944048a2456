package fs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

func lockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "Data.fs.lock")
}

func mustLock(t *testing.T, path string) *LockFile {
	t.Helper()
	l, err := LockFileFor(path)
	if err != nil {
		t.Fatalf("LockFileFor: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// wantLocked checks that err says path is locked by pid (0: unknown).
func wantLocked(t *testing.T, err error, path string, pid int) {
	t.Helper()
	if !errors.Is(err, zodb.ErrLocked) {
		t.Fatalf("error %v does not wrap zodb.ErrLocked", err)
	}
	var le *LockError
	if !errors.As(err, &le) || le.Path != path || le.Pid != pid {
		t.Fatalf("error %#v, want a *LockError on %s by pid %d", err, path, pid)
	}
	who := "another process"
	if pid != 0 {
		who = fmt.Sprintf("pid %d", pid)
	}
	if want := path + ": locked by " + who; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestLockFileExcludesSecondOpen(t *testing.T) {
	path := lockPath(t)
	l := mustLock(t, path)
	if l.Path() != path {
		t.Errorf("Path = %q, want %q", l.Path(), path)
	}
	// flock belongs to the open file, so a second open in this process is
	// refused just as another process would be.
	l2, err := LockFileFor(path)
	if err == nil {
		l2.Close()
		t.Fatal("second LockFileFor succeeded while the lock was held")
	}
	wantLocked(t, err, path, os.Getpid())

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("lock file gone after Close: %v", err)
	}
	mustLock(t, path) // free again
}

func TestLockFileContent(t *testing.T) {
	path := lockPath(t)
	// A longer content left by an earlier holder is replaced.
	if err := os.WriteFile(path, []byte(" 99999999 otherhost\nmore\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustLock(t, path)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := " " + strconv.Itoa(os.Getpid()) + "\n"; string(got) != want {
		t.Errorf("lock file holds %q, want %q", got, want)
	}
}

// A holder that has not written its pid yet (or wrote garbage) is reported
// without one.
func TestLockFileUnknownHolder(t *testing.T) {
	for _, content := range []string{"", "garbage\n"} {
		path := lockPath(t)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		_, err = LockFileFor(path)
		wantLocked(t, err, path, 0)
		f.Close()
	}
}

func TestLockFileOpenError(t *testing.T) {
	_, err := LockFileFor(filepath.Join(t.TempDir(), "missing", "Data.fs.lock"))
	if err == nil || errors.Is(err, zodb.ErrLocked) {
		t.Fatalf("error %v, want an open error", err)
	}
}

// Opening a storage in a directory that does not exist says so, rather
// than "open …/Data.fs.lock: no such file or directory".
func TestOpenInMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Open(filepath.Join(dir, "Data.fs"), Options{})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "directory "+dir+" does not exist") {
		t.Fatalf("error %v, want one saying that %s does not exist", err, dir)
	}
}

// TestLockFileOtherProcess runs this test binary as a child that holds the
// lock, and checks that we are refused with the child's pid.
func TestLockFileOtherProcess(t *testing.T) {
	path := lockPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ZRS_LOCK_HELPER="+path) // TestMain (crash_test.go) runs the holder
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v; want \"locked\\n\"", line, err)
	}

	_, err = LockFileFor(path)
	wantLocked(t, err, path, cmd.Process.Pid)

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	mustLock(t, path) // released when the holder closed it
}

// A lock taken with LockStorage before Open is the storage's own: the
// open keeps it (a second taker is refused) and Close releases it; a
// failed open releases it too, and a lock of another storage is refused.
func TestOpenWithLockTakenBefore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	l, err := LockStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{Lock: l})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockStorage(path); !errors.Is(err, zodb.ErrLocked) {
		t.Errorf("LockStorage while open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := mustLock(t, path+".lock") // released by Close

	other, err := LockStorage(filepath.Join(dir, "Other.fs"))
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if _, err := Open(path, Options{Lock: other}); err == nil || !strings.Contains(err.Error(), "Other.fs.lock") {
		t.Errorf("Open with another storage's lock: %v", err)
	}
	mustLock(t, filepath.Join(dir, "Other.fs.lock")) // released by the failed Open
	mustLock(t, path+".lock").Close()

	// A file Open refuses (not a FileStorage) releases the lock given.
	bad := filepath.Join(dir, "Bad.fs")
	if err := os.WriteFile(bad, []byte("not a storage"), 0o644); err != nil {
		t.Fatal(err)
	}
	l3, err := LockStorage(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, Options{Lock: l3}); err == nil {
		t.Fatal("Open of a bad file succeeded")
	}
	mustLock(t, bad+".lock")

	if _, err := LockStorage(filepath.Join(dir, "missing", "Data.fs")); err == nil || !strings.Contains(err.Error(), "does not exist (create it first)") {
		t.Errorf("LockStorage in a missing directory: %v", err)
	}
	if _, err := Open(path, Options{ReadOnly: true, Lock: mustLock(t, path+".lock")}); err == nil {
		t.Error("read-only Open accepted a lock")
	}
}
