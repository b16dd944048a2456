package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Compile-time checks that FileStorage provides the storage interfaces.
var (
	_ zodb.Storage  = (*FileStorage)(nil)
	_ zodb.Iterable = (*FileStorage)(nil)
	_ zodb.Undoer   = (*FileStorage)(nil)
)

// Suffixes of the files kept beside Data.fs.
const (
	lockSuffix  = ".lock"
	indexSuffix = ".index"
)

// Log attribute keys used by the storage.
const (
	logKeyPath = "path"
	logKeyPos  = "pos"
	logKeyTid  = "tid"
	logKeyFile = "file"
)

// syncFile is how a commit makes Data.fs durable, an index save its
// temporary file, and a recovery its Data.fs.trN copy: fsync(2) of the
// file.
// A variable only so that a test can see which file is synced, and when.
var syncFile = (*os.File).Sync

// ErrFS21ReadWrite is returned by a read-write Open of a file with the
// Python 2 magic "FS21": zrs reads such files but writes only FS30.
var ErrFS21ReadWrite = errors.New("file has the Python 2 magic FS21: zrs opens it read-only; " +
	"convert it to FS30 with zodbupdate --convert-py3 before opening it read-write")

// Options configure Open.
type Options struct {
	// ReadOnly opens the file without the lock file and refuses writes.
	// A read-only open never modifies Data.fs or its index, and stops at a
	// torn or unfinished last transaction instead of cutting it off.
	ReadOnly bool
	// Create truncates an existing file to an empty storage (Python's
	// create=True). A missing file is created by a read-write open anyway.
	Create bool
	// Logger receives recovery and index messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock new tids are taken from; nil means time.Now.
	Now func() time.Time
	// Lock is the storage's lock, already taken with LockStorage (by a
	// caller that checks more before the open, which may scan the whole
	// file); nil: a read-write Open takes it. Open owns it from the call
	// on and releases it if it fails. A read-only open takes no lock and
	// refuses one.
	Lock *LockFile
}

// FileStorage is a ZODB FileStorage ("Data.fs") opened by this process.
//
// Reads are safe for concurrent use with each other and with a commit in
// progress: they only touch bytes below the committed end. One transaction
// commits at a time (see Begin).
//
// The data records of the transaction being committed are buffered in
// memory until Vote; zrs does not use Python's Data.fs.tmp scratch file.
//
// Loads read committed data through a shared read-only memory mapping of
// the file (see mapReader), so a load is a map lookup and a memory copy;
// iterators read whole transactions with pread.
type FileStorage struct {
	path     string
	file     *os.File
	rd       *mapReader // reads of committed data; set once Open has recovered the file
	readOnly bool
	magic    [4]byte
	log      *slog.Logger
	lock     *LockFile // nil when read-only
	txnmap   *TxnMap

	commitSem chan struct{} // holds one token while a transaction is in progress

	mu      sync.RWMutex
	index   *Index         // oid → newest finished record, fsynced or not; guarded by mu
	end     int64          // end of committed (finished and fsynced) data; guarded by mu
	lastTid zodb.Tid       // tid of the last committed transaction; guarded by mu
	wend    int64          // end of finished data, fsynced or not: where the next transaction goes; guarded by mu
	wlast   zodb.Tid       // tid of the last finished transaction; guarded by mu
	pending []pendingTxn   // finished transactions waiting for an fsync, in file order; guarded by mu
	oid     zodb.Oid       // greatest oid handed out or stored; guarded by mu
	closed  bool           // guarded by mu
	cur     *txn           // the transaction in progress, nil if none; guarded by mu
	spare   []byte         // a finished transaction's record buffer, reused; guarded by mu
	clock   *zodb.TidClock // used under the commit lock only
	seenTid zodb.Tid       // greatest tid seen by the open scan, cut transactions included

	oidMu sync.Mutex // serializes NewOid's reservations (see oids.go)
	// oidHigh is the greatest oid reserved in Data.fs.oid: changed under
	// oidMu (setOidHigh), read without it by OidReservation, which must
	// not wait for a reservation's fsync (the replication stream asks).
	oidHigh atomic.Uint64

	syncMu  sync.Mutex                       // one fsync at a time; see syncTo
	syncErr error                            // the failure (an fsync, a status write) that closed the storage; guarded by syncMu
	fsync   func() error                     // fsyncs Data.fs (a test may slow it down)
	writeAt func([]byte, int64) (int, error) // a commit's writes: vote, status byte (a test may pause or fail them)
	cut     func(int64) error                // truncates Data.fs after a failed vote or an abort (a test may fail it)
	fsyncs  atomic.Int64                     // fsyncs made by commits
	// syncStart is when the commit fsync under way began (UnixNano), 0
	// when none is: a disk that stops answering shows as one that never
	// returns (SyncRunning).
	syncStart atomic.Int64

	releaseOnce sync.Once
	releaseErr  error
	failed      chan struct{} // closed when a failure closes the storage
	failOnce    sync.Once
}

// Open opens (and in read-write mode, locks and recovers) the FileStorage
// at path.
//
// A read-write open takes path+".lock" (failing with an error wrapping
// zodb.ErrLocked if another process holds it), writes the FS30 magic to an
// empty or new file (fsynced, with its directory), loads Data.fs.index if it
// passes Python's sanity checks or rebuilds it by scanning the file, then
// scans the transactions after the index's position. A torn or unfinished
// ('c') last transaction is cut off, its bytes saved to Data.fs.trN, as
// Python ZODB does; a rebuilt index is saved.
//
// Damage before the end of the file fails the open with a *RecordError.
func Open(path string, opts Options) (*FileStorage, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileStorage{
		path:      path,
		readOnly:  opts.ReadOnly,
		log:       log.With("component", "filestorage", logKeyPath, path),
		txnmap:    NewTxnMap(),
		commitSem: make(chan struct{}, 1),
		failed:    make(chan struct{}),
	}
	s.fsync = func() error { return syncFile(s.file) }
	s.writeAt = func(p []byte, off int64) (int, error) { return s.file.WriteAt(p, off) }
	s.cut = func(size int64) error { return s.file.Truncate(size) }
	if err := s.open(opts); err != nil {
		s.release()
		return nil, err
	}
	if !s.readOnly {
		s.loadOidHigh()
	}
	s.rd = newMapReader(s.file, s.end)
	s.clock = zodb.NewTidClock(max(s.lastTid, s.seenTid), opts.Now)
	s.warnFutureTid(opts.Now)
	return s, nil
}

// LockStorage takes the lock of the storage at path (Data.fs.lock beside
// it), as a read-write Open does first; see LockFileFor for its errors. A
// missing directory is reported as such.
func LockStorage(path string) (*LockFile, error) {
	if dir := filepath.Dir(path); !exists(dir) {
		return nil, fmt.Errorf("open %s: directory %s does not exist (create it first): %w", path, dir, os.ErrNotExist)
	}
	return LockFileFor(path + lockSuffix)
}

// open does the work of Open; on error the caller releases what was taken.
func (s *FileStorage) open(opts Options) error {
	if s.readOnly && opts.Lock != nil {
		opts.Lock.Close()
		return fmt.Errorf("open %s: read-only, yet given a lock (Options.Lock)", s.path)
	}
	if !s.readOnly {
		l := opts.Lock
		if l == nil {
			var err error
			if l, err = LockStorage(s.path); err != nil {
				return err
			}
		} else if l.Path() != s.path+lockSuffix {
			l.Close()
			return fmt.Errorf("open %s: Options.Lock holds %s, not this storage's lock", s.path, l.Path())
		}
		s.lock = l
	}
	if err := s.openFile(opts.Create); err != nil {
		return err
	}
	if err := s.readMagic(); err != nil {
		return err
	}
	return s.loadIndex()
}

// openFile opens or creates Data.fs, writing the magic to a new or empty file.
func (s *FileStorage) openFile(create bool) error {
	if s.readOnly {
		f, err := os.Open(s.path)
		if err != nil {
			return err
		}
		s.file = f
		return nil
	}
	_, statErr := os.Stat(s.path)
	fresh := errors.Is(statErr, os.ErrNotExist)
	flags := os.O_RDWR | os.O_CREATE
	if create {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.path, flags, 0o644)
	if err != nil {
		return err
	}
	s.file = f
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if err := s.writeMagic(); err != nil {
			return err
		}
	}
	// A file this open created, or an empty one an earlier open created
	// and failed to fill (its directory entry was then never fsynced),
	// is about to hold commits: its name must survive a power loss.
	if fresh || create {
		s.dropOidHigh()
	}
	if fresh || create || st.Size() == 0 {
		return syncDir(filepath.Dir(s.path))
	}
	return nil
}

// writeMagic writes FS30 to an empty file and fsyncs it.
func (s *FileStorage) writeMagic() error {
	if _, err := s.file.WriteAt(Magic30[:], 0); err != nil {
		return fmt.Errorf("%s: writing magic: %w", s.path, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", s.path, err)
	}
	return nil
}

// readMagic checks the file header and refuses FS21 for writing.
func (s *FileStorage) readMagic() error {
	size, err := s.fileSize()
	if err != nil {
		return err
	}
	if size == 0 { // read-only open of an empty file: an empty storage
		s.magic = Magic30
		return nil
	}
	var m [MagicSize]byte
	if _, err := s.file.ReadAt(m[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return &RecordError{Path: s.path, Record: "file header", Pos: 0, Err: err}
	}
	switch m {
	case Magic30:
	case Magic21:
		if !s.readOnly {
			return fmt.Errorf("%s: %w", s.path, ErrFS21ReadWrite)
		}
	default:
		return &RecordError{Path: s.path, Record: "file header", Pos: 0, Err: fmt.Errorf("%w: %q", ErrBadMagic, m[:])}
	}
	s.magic = m
	return nil
}

// fileSize returns the current size of Data.fs.
func (s *FileStorage) fileSize() (int64, error) {
	st, err := s.file.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// warnFutureTid logs when the last tid lies ahead of the clock, as Python
// does at open (critical beyond 30 minutes).
func (s *FileStorage) warnFutureTid(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	ahead := s.lastTid.Time().Sub(now())
	switch {
	case ahead > 30*time.Minute:
		s.log.Error("last transaction is far in the future", logKeyTid, s.lastTid, "ahead", ahead)
	case ahead > 0:
		s.log.Warn("last transaction is in the future", logKeyTid, s.lastTid, "ahead", ahead)
	}
}

// Path returns the path of Data.fs.
func (s *FileStorage) Path() string { return s.path }

// ReadOnly reports whether the storage refuses writes.
func (s *FileStorage) ReadOnly() bool { return s.readOnly }

// LastTransaction returns the tid of the last committed transaction.
func (s *FileStorage) LastTransaction() zodb.Tid {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastTid
}

// Len returns the number of oids in the index, deleted ones included, not
// counting those that only transactions still waiting for their fsync
// created.
func (s *FileStorage) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := s.index.Len()
	for _, p := range s.pending {
		n -= len(p.created)
	}
	return n
}

// Fsyncs returns how many fsyncs commits have made since Open. With
// concurrent committers it is less than the number of commits: one fsync
// covers every transaction finished while the previous one ran.
func (s *FileStorage) Fsyncs() int64 { return s.fsyncs.Load() }

// CommittedEnd returns the offset where committed data ends.
func (s *FileStorage) CommittedEnd() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.end
}

// Size returns the size of the committed file in bytes (what ZODB's
// getSize reports).
func (s *FileStorage) Size() int64 { return s.CommittedEnd() }

// Oids returns the oids in the index in ascending order, deleted ones
// included, and not those that only transactions still waiting for their
// fsync created (Len counts the same).
func (s *FileStorage) Oids() []zodb.Oid {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var unseen map[zodb.Oid]bool
	for _, p := range s.pending {
		for _, oid := range p.created {
			if unseen == nil {
				unseen = make(map[zodb.Oid]bool)
			}
			unseen[oid] = true
		}
	}
	oids := make([]zodb.Oid, 0, s.index.Len())
	s.index.Range(func(oid zodb.Oid, _ int64) bool {
		if !unseen[oid] {
			oids = append(oids, oid)
		}
		return true
	})
	return oids
}

// noteOid raises the allocation floor to oid (a stored or restored oid).
func (s *FileStorage) noteOid(oid zodb.Oid) {
	s.mu.Lock()
	if oid > s.oid {
		s.oid = oid
	}
	s.mu.Unlock()
}

// Iterate returns an iterator over the committed transactions with
// start <= tid <= stop. It sees the transactions committed when it is
// created, not later ones.
func (s *FileStorage) Iterate(ctx context.Context, start, stop zodb.Tid) (zodb.TxnIterator, error) {
	s.mu.RLock()
	end, closed := s.end, s.closed
	s.mu.RUnlock()
	if closed {
		return nil, zodb.ErrClosed
	}
	// pread, not the mapping: an iterator reads whole windows, which pread
	// copies as fast, and touching the mapping would count the pages of
	// every transaction it passes in the process's RSS.
	it, err := NewFileIterator(s.file, s.path, end, start, stop, s.txnmap)
	if err != nil {
		return nil, err
	}
	it.Committed()
	return it, nil
}

// Pack is not implemented yet.
func (s *FileStorage) Pack(ctx context.Context, t time.Time) error {
	return fmt.Errorf("pack is not supported yet: %w", zodb.ErrNotSupported)
}

// Close aborts a transaction in progress, saves the index (read-write),
// closes Data.fs and releases the lock. It is idempotent; on a storage
// that a failed fsync closed, it returns that failure (the commits it
// covered failed; the index was not saved, and the next open rebuilds
// what it lacks).
//
// Durability: transactions finished but not yet fsynced are fsynced; the
// index is written to a temp file, fsynced and renamed. An index that
// cannot be saved is logged as a warning: the file holds every commit.
func (s *FileStorage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.syncMu.Lock()
		defer s.syncMu.Unlock()
		return s.syncErr
	}
	s.closed = true
	cur := s.cur
	s.mu.Unlock()
	if cur != nil {
		_ = cur.Abort()
	}
	// A vote or finish that failed and is closing the storage holds the
	// commit lock until failClose has recorded its failure: wait for it.
	s.commitSem <- struct{}{}
	<-s.commitSem
	// No transaction can begin now, and cur has ended (aborted, or
	// finished by a Finish that won the race): wend is final.
	s.mu.RLock()
	wend := s.wend
	s.mu.RUnlock()
	var err error
	if !s.readOnly && s.file != nil {
		// Transactions finished but not yet fsynced (their Finish is on
		// its way to syncTo) become durable now, before the index that
		// covers them is saved. The index is a cache of the file: once
		// every commit is durable, failing to save it (a full disk) is a
		// warning, as at open, not a failed close.
		err = s.syncTo(wend)
		// Under syncMu: a failure that closed the storage meanwhile (the
		// transaction aborted above failing to cut itself) released the
		// lock, and is what Close returns; nothing is written after it.
		s.syncMu.Lock()
		if s.syncErr != nil {
			err = s.syncErr
		} else if err == nil {
			if ierr := s.saveIndex(); ierr != nil {
				s.log.Warn("cannot save the index; every commit is in Data.fs, and the next open scans what the old index does not cover",
					logKeyFile, s.path+indexSuffix, "err", ierr)
			}
		}
		s.syncMu.Unlock()
	}
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// Failed returns a channel that is closed when the storage closes itself
// after a failed write or fsync at commit, or a failed cut of a voted
// transaction it will not finish: the file's state is then left
// to the next open, which recovers it, so a daemon should stop (Close
// returns the failure). It is never closed by Close.
func (s *FileStorage) Failed() <-chan struct{} { return s.failed }

// release closes the file and the lock, once. It waits for a NewOid
// reservation under way (oidMu), so that Data.fs.oid is never written
// once another process may hold the lock; callers must not hold mu.
func (s *FileStorage) release() error {
	s.releaseOnce.Do(func() {
		s.oidMu.Lock()
		defer s.oidMu.Unlock()
		s.releaseErr = s.releaseFiles()
	})
	return s.releaseErr
}

func (s *FileStorage) releaseFiles() error {
	var err error
	if s.rd != nil {
		err = s.rd.Close()
	}
	if s.file != nil {
		err = errors.Join(err, s.file.Close())
	}
	if s.lock != nil {
		if lerr := s.lock.Close(); err == nil {
			err = lerr
		}
	}
	return err
}

// saveIndex writes Data.fs.index covering the committed end.
func (s *FileStorage) saveIndex() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return WriteIndexFile(s.path+indexSuffix, s.end, s.index)
}

// FirstTxnMeta returns the first committed transaction's tid, status,
// position and metadata, without its records (nil, nil for an empty
// storage). Unlike Iterate it reads no data, so it costs the same whatever
// the first transaction holds.
func (s *FileStorage) FirstTxnMeta(ctx context.Context) (*zodb.TxnInfo, error) {
	s.mu.RLock()
	end, closed := s.end, s.closed
	s.mu.RUnlock()
	if closed {
		return nil, zodb.ErrClosed
	}
	it, err := NewFileIterator(s.file, s.path, end, 0, zodb.MaxTid, nil)
	if err != nil {
		return nil, err
	}
	it.Committed()
	defer it.Close()
	h, err := it.NextHeader(ctx)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	meta, err := readMeta(s.rd, s.path, &h)
	if err != nil {
		return nil, err
	}
	return &zodb.TxnInfo{Tid: h.Tid, Status: h.Status, TxnMeta: meta, Pos: h.Pos}, nil
}

// exists reports whether path names something (a stat that fails for any
// other reason than absence counts as existing: the open that follows
// reports it).
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
