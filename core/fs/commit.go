package fs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// txn states.
const (
	txnOpen = iota
	txnVoted
	txnDone // finished or aborted
)

// txn is a FileStorage transaction in progress. Its data records are
// encoded into buf with their final positions (the transaction goes at the
// committed end, which cannot move while the commit lock is held).
type txn struct {
	s      *FileStorage
	tid    zodb.Tid
	status zodb.TxnStatus
	meta   zodb.TxnMeta
	pos    int64 // where the transaction header goes: the committed end at Begin
	hlen   int64 // header plus metadata length

	mu     sync.Mutex
	state  int
	buf    []byte                // encoded data records; guarded by mu
	tindex map[zodb.Oid]int64    // oid → position of its last record here; guarded by mu
	checks map[zodb.Oid]zodb.Tid // CheckCurrentSerial requests; guarded by mu
	oids   []zodb.Oid            // oids written, in order; guarded by mu
}

// Begin starts a transaction, waiting for the commit lock until ctx ends.
// The tid is opts.Tid (which must exceed the last tid) or the next tid of
// the storage's clock. Metadata strings longer than 65535 bytes are refused.
func (s *FileStorage) Begin(ctx context.Context, meta zodb.TxnMeta, opts zodb.BeginOptions) (zodb.Txn, error) {
	if s.readOnly {
		return nil, zodb.ErrReadOnly
	}
	if err := checkMeta(meta); err != nil {
		return nil, err
	}
	status := opts.Status
	if status == 0 {
		status = zodb.StatusCommitted
	}
	if !status.Valid() {
		return nil, fmt.Errorf("%w: invalid status %q", zodb.ErrTransaction, rune(status))
	}
	select {
	case s.commitSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The lock goes back if newTxn fails, or panics: a caller that
	// recovers (a ZEO server ending one connection) must not find every
	// later commit waiting for it.
	held := true
	defer func() {
		if held {
			<-s.commitSem
		}
	}()
	t, err := s.newTxn(meta, opts.Tid, status)
	if err != nil {
		return nil, err
	}
	held = false
	return t, nil
}

// checkMeta refuses metadata that does not fit the 16-bit lengths.
func checkMeta(m zodb.TxnMeta) error {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"user name", m.User}, {"description", m.Description}, {"extension", m.Extension}} {
		if len(f.b) > zodb.MaxMetaLen {
			return fmt.Errorf("%w: %s too long (%d bytes, at most %d)", zodb.ErrTransaction, f.name, len(f.b), zodb.MaxMetaLen)
		}
	}
	return nil
}

// newTxn registers a transaction; the caller holds the commit lock.
func (s *FileStorage) newTxn(meta zodb.TxnMeta, tid zodb.Tid, status zodb.TxnStatus) (*txn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, zodb.ErrClosed
	}
	switch {
	case tid == 0:
		s.clock.Observe(s.wlast)
		tid = s.clock.Next()
	case tid <= s.wlast || tid > zodb.MaxTid:
		return nil, fmt.Errorf("%w: tid %s is not after the last transaction %s", zodb.ErrTransaction, tid, s.wlast)
	default:
		s.clock.Observe(tid)
	}
	t := &txn{
		s: s, tid: tid, status: status, meta: meta, pos: s.wend,
		hlen:   TxnHeaderSize + int64(len(meta.User)+len(meta.Description)+len(meta.Extension)),
		tindex: make(map[zodb.Oid]int64),
		buf:    s.spare[:0],
	}
	s.spare = nil
	s.cur = t
	return t, nil
}

// maxSpare bounds the record buffer a FileStorage keeps for its next
// transaction.
const maxSpare = 16 << 20

// keepBuffer keeps a finished transaction's record buffer for the next
// one (a secondary applying a stream of large transactions otherwise
// regrows it every time). The caller holds s.mu.
func (s *FileStorage) keepBuffer(b []byte) {
	if cap(b) <= maxSpare && cap(b) > cap(s.spare) {
		s.spare = b[:0]
	}
}

// Tid returns the transaction's tid.
func (t *txn) Tid() zodb.Tid { return t.tid }

// lockOpen locks t and checks that records may still be added.
func (t *txn) lockOpen() error {
	t.mu.Lock()
	if t.state != txnOpen {
		t.mu.Unlock()
		return fmt.Errorf("%w: transaction %s already voted or ended", zodb.ErrTransaction, t.tid)
	}
	return nil
}

// current returns oid's newest finished record position and serial (0, 0
// if the storage does not know oid). A transaction is checked against
// every transaction finished before it, fsynced yet or not.
func (t *txn) current(oid zodb.Oid) (int64, zodb.Tid, error) {
	s := t.s
	s.mu.RLock()
	pos, ok := s.index.Get(oid)
	end := s.wend
	s.mu.RUnlock()
	if !ok {
		return 0, 0, nil
	}
	d, err := s.readRecord(pos, end, oid)
	if err != nil {
		return 0, 0, err
	}
	return pos, d.Tid, nil
}

// Store adds a revision of oid based on oldSerial (0 for a new object).
// Errors: *zodb.ConflictError when oldSerial is not oid's current serial.
// As in Python's FileStorage, an oid the file does not hold is stored
// whatever oldSerial says (there is nothing to conflict with).
func (t *txn) Store(oid zodb.Oid, oldSerial zodb.Tid, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty data for object %s", zodb.ErrTransaction, oid)
	}
	if err := t.lockOpen(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	prev, serial, err := t.current(oid)
	if err != nil {
		return err
	}
	if prev != 0 && serial != oldSerial {
		return &zodb.ConflictError{Oid: oid, Committed: serial, Old: oldSerial}
	}
	t.s.noteOid(oid)
	t.appendRecord(oid, t.tid, prev, data, 0)
	return nil
}

// CheckCurrentSerial makes Vote fail unless serial is still oid's current
// serial then.
func (t *txn) CheckCurrentSerial(oid zodb.Oid, serial zodb.Tid) error {
	if err := t.lockOpen(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if t.checks == nil {
		t.checks = make(map[zodb.Oid]zodb.Tid)
	}
	t.checks[oid] = serial
	return nil
}

// Delete adds a deletion of oid (a record with a zero backpointer).
// Errors: *zodb.NotFoundError if oid is unknown, *zodb.ConflictError if
// oldSerial is not its current serial.
func (t *txn) Delete(oid zodb.Oid, oldSerial zodb.Tid) error {
	if err := t.lockOpen(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	prev, serial, err := t.current(oid)
	if err != nil {
		return err
	}
	if prev == 0 {
		return &zodb.NotFoundError{Oid: oid}
	}
	if serial != oldSerial {
		return &zodb.ConflictError{Oid: oid, Committed: serial, Old: oldSerial}
	}
	t.appendRecord(oid, t.tid, prev, nil, 0)
	return nil
}

// appendRecord encodes a data record into buf: inline data when data is
// non-empty, else a backpointer to back (0 for a deletion). prev is the
// oid's committed position. The caller holds t.mu.
func (t *txn) appendRecord(oid zodb.Oid, serial zodb.Tid, prev int64, data []byte, back int64) {
	here := t.pos + t.hlen + int64(len(t.buf))
	d := DataHeader{Oid: oid, Tid: serial, Prev: prev, Tloc: t.pos, PLen: int64(len(data))}
	t.buf = d.Encode(t.buf)
	if len(data) > 0 {
		t.buf = append(t.buf, data...)
	} else {
		t.buf = binary.BigEndian.AppendUint64(t.buf, uint64(back))
	}
	if _, seen := t.tindex[oid]; !seen {
		t.oids = append(t.oids, oid)
	}
	t.tindex[oid] = here
}

// Vote writes the whole transaction at the committed end with status 'c'
// (header, metadata, data records, trailer), after checking the
// CheckCurrentSerial requests. The write is not fsynced: until Finish
// flips the status, a crash leaves a 'c' transaction that the next
// read-write open cuts off. On error the file is truncated back; if that
// fails too, the storage closes itself (see Failed), since the file's
// state is then unknown: the next transaction would be written over the
// start of the one left behind, and the rest of it would stay past the
// file's logical end, where readers of the live file (repozo, fstail,
// verify) take it for a transaction. The next open cuts it.
func (t *txn) Vote(ctx context.Context) error {
	t.mu.Lock()
	if t.state != txnOpen {
		t.mu.Unlock()
		return fmt.Errorf("%w: transaction %s already voted or ended", zodb.ErrTransaction, t.tid)
	}
	if err := t.checkSerials(); err != nil {
		t.mu.Unlock()
		return err
	}
	err := t.write()
	if err == nil {
		t.state = txnVoted
		t.mu.Unlock()
		return nil
	}
	if errors.Is(err, zodb.ErrTransaction) {
		t.mu.Unlock()
		return err
	}
	terr := t.s.cut(t.pos)
	if terr == nil || errors.Is(terr, os.ErrClosed) {
		t.mu.Unlock()
		return err
	}
	// The commit lock passes with failClose; Abort then has nothing to do.
	t.state = txnDone
	t.mu.Unlock()
	cerr := fmt.Errorf("%s: cannot cut transaction %s back to %d after its vote failed: %w", t.s.path, t.tid, t.pos, terr)
	t.s.failClose(t, "a failed vote could not be cut", cerr)
	return fmt.Errorf("%w; %w", err, cerr)
}

// checkSerials verifies CheckCurrentSerial requests. The caller holds t.mu.
func (t *txn) checkSerials() error {
	for oid, serial := range t.checks {
		pos, cur, err := t.current(oid)
		if err != nil {
			return err
		}
		if pos == 0 {
			// As Python's FileStorage: POSKeyError, not a conflict.
			return &zodb.NotFoundError{Oid: oid}
		}
		if cur != serial {
			return &zodb.ConflictError{Oid: oid, Committed: cur, Old: serial, Reason: "read conflict"}
		}
	}
	return nil
}

// header returns the transaction header with status 'c' and the
// metadata: what goes before the data records.
func (t *txn) header() []byte {
	tlen := t.hlen + int64(len(t.buf))
	h := TxnHeader{Tid: t.tid, Len: tlen, Status: zodb.StatusCheckpoint,
		ULen: uint16(len(t.meta.User)), DLen: uint16(len(t.meta.Description)), ELen: uint16(len(t.meta.Extension))}
	rec := make([]byte, 0, t.hlen)
	rec = h.Encode(rec)
	rec = append(rec, t.meta.User...)
	rec = append(rec, t.meta.Description...)
	return append(rec, t.meta.Extension...)
}

// write writes the whole transaction record at t.pos: header and
// metadata, the data records straight from buf (no copy of a large
// transaction into one more buffer), the trailer.
func (t *txn) write() error {
	tlen := t.hlen + int64(len(t.buf))
	if t.pos+tlen+TrailerSize > MaxPos {
		return fmt.Errorf("%w: file would exceed %d bytes", zodb.ErrTransaction, int64(MaxPos))
	}
	trailer := binary.BigEndian.AppendUint64(nil, uint64(tlen))
	off := t.pos
	for _, p := range [][]byte{t.header(), t.buf, trailer} {
		if _, err := t.s.writeAt(p, off); err != nil {
			return fmt.Errorf("%s: writing transaction %s: %w", t.s.path, t.tid, err)
		}
		off += int64(len(p))
	}
	return nil
}

// Finish commits a voted transaction: it overwrites the status byte with
// ' ' (or the status given to Begin), releases the commit lock, and returns
// once Data.fs is fsynced up to the end of the transaction. Only then is
// the transaction visible to readers (loads, iterators, LastTransaction).
//
// Group commit: the next transaction may begin, store and vote while this
// one waits for its fsync, and one fsync makes every transaction finished
// by then durable. Each transaction is still checked for conflicts against
// all those finished before it, and written after them; a crash before the
// fsync loses it, and every later one, and nobody was told it committed.
//
// If the status write fails the storage is closed, since the file's state
// is then unknown; if an fsync fails, the storage is closed and every
// transaction it would have made durable gets the error.
func (t *txn) Finish(ctx context.Context) (zodb.Tid, error) {
	t.mu.Lock()
	if t.state != txnVoted {
		t.mu.Unlock()
		return 0, fmt.Errorf("%w: finish of transaction %s without a successful vote", zodb.ErrTransaction, t.tid)
	}
	s := t.s
	err := t.writeStatus()
	t.state = txnDone
	if err != nil {
		t.mu.Unlock()
		s.failClose(t, "finish failed", err)
		return 0, err
	}
	end := t.pos + t.hlen + int64(len(t.buf)) + TrailerSize
	s.mu.Lock()
	var created []zodb.Oid
	for _, oid := range t.oids {
		if s.index.Set(oid, t.tindex[oid]) {
			created = append(created, oid)
		}
	}
	s.wend, s.wlast, s.cur = end, t.tid, nil
	s.pending = append(s.pending, pendingTxn{tid: t.tid, pos: t.pos, end: end, created: created})
	s.keepBuffer(t.buf)
	t.buf, t.tindex = nil, nil
	s.mu.Unlock()
	t.mu.Unlock()
	<-s.commitSem
	if err := s.syncTo(end); err != nil {
		return 0, err
	}
	return t.tid, nil
}

// pendingTxn is a finished transaction waiting for an fsync.
type pendingTxn struct {
	tid      zodb.Tid
	pos, end int64
	created  []zodb.Oid // oids it adds to the index: not in Len or Oids until durable
}

// writeStatus writes the final status byte (not fsynced: see syncTo).
func (t *txn) writeStatus() error {
	if _, err := t.s.writeAt([]byte{byte(t.status)}, t.pos+16); err != nil {
		return fmt.Errorf("%s: finishing transaction %s: %w", t.s.path, t.tid, err)
	}
	return nil
}

// syncTo returns once Data.fs is fsynced at least up to end, and what that
// fsync covered is visible to readers. One fsync runs at a time; it covers
// every transaction finished before it starts, so finishers that queue
// behind it mostly find their transaction already durable (group commit).
func (s *FileStorage) syncTo(end int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	// s.end, the readers' end, is what the fsyncs so far have covered.
	s.mu.RLock()
	durable, batch := s.end >= end, s.pending
	s.mu.RUnlock()
	if durable {
		return nil
	}
	if s.syncErr != nil {
		return s.syncErr
	}
	if len(batch) == 0 || batch[len(batch)-1].end < end {
		// Cannot happen: a finished transaction is pending until synced.
		return fmt.Errorf("%s: %w: transaction ending at %d is not pending", s.path, zodb.ErrTransaction, end)
	}
	s.fsyncs.Add(1)
	s.syncStart.Store(time.Now().UnixNano())
	err := s.fsync()
	s.syncStart.Store(0)
	if err != nil {
		s.syncErr = fmt.Errorf("%s: fsync finishing transactions up to %s: %w", s.path, batch[len(batch)-1].tid, err)
		s.failSync(s.syncErr)
		return s.syncErr
	}
	last := batch[len(batch)-1]
	s.rd.ensure(last.end)
	s.mu.Lock()
	s.end, s.lastTid = last.end, last.tid
	s.pending = s.pending[len(batch):]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	s.mu.Unlock()
	for _, p := range batch {
		s.txnmap.Add(p.tid, p.pos)
	}
	return nil
}

// SyncRunning returns how long the fsync of finishing transactions now
// under way has been running, 0 if none is. Commits wait for it: seconds
// mean a disk (or network file system) that is not answering, which
// status reports show, since nothing else in the process is stuck.
func (s *FileStorage) SyncRunning() time.Duration {
	start := s.syncStart.Load()
	if start == 0 {
		return 0
	}
	return max(time.Since(time.Unix(0, start)), time.Nanosecond)
}

// failSync closes the storage after a failed fsync. The transactions it
// covered stay in the file; whether they are committed is decided by the
// next open. The caller holds syncMu, not the commit lock: with group
// commit the next transaction may be writing its vote meanwhile, so it is
// aborted first — Abort waits for that write and cuts it — and only then
// are the file and Data.fs.lock released. Releasing the lock while a write
// is still on its way would let another process open and append to the
// file under it.
func (s *FileStorage) failSync(err error) {
	s.log.Error("fsync failed, closing the storage", "err", err)
	s.mu.Lock()
	s.closed = true
	cur := s.cur
	s.mu.Unlock()
	if cur != nil {
		_ = cur.Abort()
	}
	_ = s.release()
	s.failOnce.Do(func() { close(s.failed) })
}

// failClose closes the storage after a failed finish, or a voted
// transaction's failed cut. The transaction's bytes stay in the file;
// whether they are committed is decided by the next open. The caller
// holds the commit lock (which failClose passes on) but not t.mu, so
// nothing else writes; it takes syncMu so that no fsync is under way when
// the file closes, and leaves the error for Close to return.
func (s *FileStorage) failClose(t *txn, what string, err error) {
	s.log.Error(what+", closing the storage", logKeyTid, t.tid, logKeyPos, t.pos, "err", err)
	s.mu.Lock()
	s.closed, s.cur = true, nil
	s.mu.Unlock()
	s.syncMu.Lock()
	if s.syncErr == nil {
		s.syncErr = err
	}
	_ = s.release()
	s.syncMu.Unlock()
	<-s.commitSem
	s.failOnce.Do(func() { close(s.failed) })
}

// Abort discards the transaction: after Vote the file is truncated back to
// where the transaction started (not fsynced: the cut bytes were a 'c'
// transaction, which an open cuts anyway). If that truncation fails the
// storage closes itself, as a failed cut after a failed vote does (see
// Vote). It is idempotent.
func (t *txn) Abort() error {
	t.mu.Lock()
	if t.state == txnDone {
		t.mu.Unlock()
		return nil
	}
	s := t.s
	var err error
	if t.state == txnVoted {
		if terr := s.cut(t.pos); terr != nil && !errors.Is(terr, os.ErrClosed) {
			err = fmt.Errorf("%s: truncating aborted transaction %s back to %d: %w", s.path, t.tid, t.pos, terr)
		}
	}
	t.state = txnDone
	buf := t.buf
	t.buf, t.tindex = nil, nil
	t.mu.Unlock()
	s.mu.Lock()
	closing := s.closed // failSync aborts the transaction it interrupts, holding syncMu
	if err != nil && !closing {
		s.mu.Unlock()
		s.failClose(t, "an aborted transaction could not be cut", err)
		return err
	}
	if s.cur == t {
		s.cur = nil
	}
	s.keepBuffer(buf)
	s.mu.Unlock()
	<-s.commitSem
	return err
}
