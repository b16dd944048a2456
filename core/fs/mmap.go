package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/zrs-replication/zrs/core/zodb"
)

// mapReader serves reads of committed data from a read-only shared memory
// mapping of Data.fs, falling back to pread for anything outside it. A load
// or an iterator step then costs a memory copy instead of a system call.
//
// The mapping is made larger than the file (a shared mapping may extend past
// the end of file); bytes the storage appends become visible through it as
// the file grows, so it is remapped only when the committed end passes the
// mapped length, which at least doubles each time. Reads are bounded by the
// committed end the caller knows, which never shrinks while the storage is
// open, so no read touches a page past the end of file.
//
// An I/O error while reading a mapped page would raise SIGBUS; reads run
// with debug.SetPanicOnFault so such a fault comes back as an error instead
// of killing the daemon.
type mapReader struct {
	f     *os.File
	limit atomic.Int64 // mapped reads stay below this offset (the committed end)

	mu   sync.RWMutex // write-held to remap or unmap; read-held by ReadAt while copying
	data []byte       // current mapping, nil if none; guarded by mu
	old  [][]byte     // earlier mappings, unmapped at close; guarded by mu
}

// minMapLen is the smallest mapping made: 64 MiB of address space (no
// memory is used until pages are read).
const minMapLen = 64 << 20

// newMapReader maps f for reads up to at least size bytes. When mapping is
// impossible (an unusual file system) it returns a reader that uses pread.
func newMapReader(f *os.File, size int64) *mapReader {
	r := &mapReader{f: f}
	r.ensure(size)
	return r
}

// ensure makes the mapping cover [0, size) if possible and lets mapped
// reads reach size. size must not exceed the file's size, now or later.
func (r *mapReader) ensure(size int64) {
	defer r.limit.Store(size)
	r.mu.RLock()
	ok := int64(len(r.data)) >= size
	r.mu.RUnlock()
	if ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if int64(len(r.data)) >= size {
		return
	}
	n := max(int64(minMapLen), int64(len(r.data))*2)
	for n < size {
		n *= 2
	}
	data, err := syscall.Mmap(int(r.f.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return // keep the old mapping (or none); reads fall back to pread
	}
	if r.data != nil {
		r.old = append(r.old, r.data)
	}
	r.data = data
}

// ReadAt copies len(p) bytes at off: from the mapping when the range lies
// below the committed end and is small, else with pread.
func (r *mapReader) ReadAt(p []byte, off int64) (n int, err error) {
	if off < 0 || off+int64(len(p)) > r.limit.Load() || len(p) >= bigRead {
		return r.pread(p, off)
	}
	mapped, err := r.withMapped(off, func(b []byte) {
		if len(b) >= len(p) {
			n = copy(p, b)
		}
	})
	if err != nil {
		return 0, err
	}
	if mapped && n == len(p) {
		return n, nil
	}
	return r.pread(p, off)
}

// pread reads with the file. A read that lost a race with the storage's
// Close says so (zodb.ErrClosed), rather than look like a damaged record.
func (r *mapReader) pread(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if errors.Is(err, os.ErrClosed) {
		err = zodb.ErrClosed
	}
	return n, err
}

// bigRead is the size from which pread is used even for mapped ranges: a
// large sequential read costs one system call either way, and pread avoids
// faulting in the pages of the mapping one by one.
const bigRead = 64 << 10

// errMapFault reports an I/O error met while reading a mapped page.
var errMapFault = errors.New("I/O error reading mapped file")

// withMapped runs fn on the mapped bytes from off up to the committed end,
// under the read lock and with a memory fault (an I/O error on a mapped
// page) turned into an error. fn must not keep b. It reports false, without
// running fn, when off is not mapped.
func (r *mapReader) withMapped(off int64, fn func(b []byte)) (ok bool, err error) {
	limit := r.limit.Load()
	r.mu.RLock()
	defer r.mu.RUnlock()
	limit = min(limit, int64(len(r.data)))
	if off < 0 || off >= limit {
		return false, nil
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if e := recover(); e != nil {
			ok, err = true, fmt.Errorf("%w: %v", errMapFault, e)
		}
	}()
	fn(r.data[off:limit:limit])
	return true, nil
}

// Close unmaps every mapping. It does not close the file. Idempotent.
func (r *mapReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	for _, m := range append(r.old, r.data) {
		if m != nil {
			err = errors.Join(err, syscall.Munmap(m))
		}
	}
	r.data, r.old = nil, nil
	return err
}

var _ io.ReaderAt = (*mapReader)(nil)
