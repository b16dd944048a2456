package zodb

import (
	"context"
	"slices"
)

// Loader reads object revisions. All methods are safe for concurrent use.
type Loader interface {
	// Load returns the current revision of oid and its serial.
	// Errors: *NotFoundError (ErrNotFound) if the object never existed, was
	// deleted or its creation was undone.
	Load(ctx context.Context, oid Oid) (data []byte, serial Tid, err error)

	// LoadBefore returns the newest revision of oid with a serial strictly
	// less than before, with next = the serial of the revision that
	// replaced it (0 if it is still current).
	// Errors: ErrNotFound if oid is unknown or that revision is a deletion;
	// ErrNoRevision if the object has no revision before that tid.
	LoadBefore(ctx context.Context, oid Oid, before Tid) (data []byte, serial, next Tid, err error)

	// LoadSerial returns the revision of oid written with exactly serial.
	// Errors: ErrNotFound if there is no such revision, or it is a deletion.
	LoadSerial(ctx context.Context, oid Oid, serial Tid) ([]byte, error)

	// History returns up to size revisions of oid, newest first.
	// Errors: ErrNotFound if oid is unknown.
	History(ctx context.Context, oid Oid, size int) ([]HistoryEntry, error)

	// LastTransaction returns the tid of the last committed transaction,
	// ZeroTid for an empty storage.
	LastTransaction() Tid

	// Len returns the number of objects (deleted ones included until pack).
	Len() int
}

// LoadBeforeAppender is implemented by storages that can append the data
// LoadBefore returns to a buffer of the caller's instead of a new one (a
// ZEO server writes it straight into its reply). When it must grow dst it
// leaves room for AppendRoom more bytes, so that a caller appending a
// short trailer does not copy everything again. On error out is dst.
type LoadBeforeAppender interface {
	AppendLoadBefore(ctx context.Context, dst []byte, oid Oid, before Tid) (out []byte, serial, next Tid, err error)
}

// AppendRoom is the spare capacity a LoadBeforeAppender leaves after the
// data when it grows the caller's buffer.
const AppendRoom = 64

// GrowForData returns dst grown, if needed, to take n more bytes of data
// and AppendRoom after them: how a LoadBeforeAppender grows dst.
func GrowForData(dst []byte, n int) []byte { return slices.Grow(dst, n+AppendRoom) }

// AppendLoadBefore is LoadBefore appending the data to dst, through st's
// AppendLoadBefore when it has one. Data nil without an error (which
// LoadBefore should not return) is a NotFoundError. On error out is dst.
func AppendLoadBefore(ctx context.Context, st Loader, dst []byte, oid Oid, before Tid) (out []byte, serial, next Tid, err error) {
	if ap, ok := st.(LoadBeforeAppender); ok {
		return ap.AppendLoadBefore(ctx, dst, oid, before)
	}
	data, serial, next, err := st.LoadBefore(ctx, oid, before)
	if err == nil && data == nil {
		err = &NotFoundError{Oid: oid}
	}
	if err != nil {
		return dst, 0, 0, err
	}
	return append(GrowForData(dst, len(data)), data...), serial, next, nil
}

// TidBeforer is implemented by storages that can tell the serial of an
// object's revision before a tid without reading its data, as
// FileStorage.getTid does for the current one: an error (a NotFoundError)
// only when that revision is a deletion or an undone creation itself,
// not when it points back to one (such a revision has a tid, and no data
// to load).
type TidBeforer interface {
	TidBefore(ctx context.Context, oid Oid, before Tid) (Tid, error)
}

// TidBefore is the serial of oid's newest revision before before, through
// st's TidBefore when it has one, else its LoadBefore.
func TidBefore(ctx context.Context, st Loader, oid Oid, before Tid) (Tid, error) {
	if tb, ok := st.(TidBeforer); ok {
		return tb.TidBefore(ctx, oid, before)
	}
	data, serial, _, err := st.LoadBefore(ctx, oid, before)
	if err == nil && data == nil {
		err = &NotFoundError{Oid: oid}
	}
	return serial, err
}

// Storage is a ZODB storage: loads, oids, and two-phase commits.
type Storage interface {
	Loader
	// NewOid allocates a fresh oid, never returned before and never used in
	// the storage. Errors: ErrReadOnly.
	NewOid(ctx context.Context) (Oid, error)
	// Begin starts a transaction, waiting (bounded by ctx) for the commit
	// lock. Only one transaction is in progress at a time; the lock is
	// released by Finish or Abort. Errors: ErrReadOnly, ErrClosed, ctx.Err().
	Begin(ctx context.Context, meta TxnMeta, opts BeginOptions) (Txn, error)
	// ReadOnly reports whether the storage refuses writes.
	ReadOnly() bool
	// Close releases the storage. It is idempotent; a transaction in
	// progress is aborted.
	Close() error
}

// BeginOptions are given to Storage.Begin.
type BeginOptions struct {
	// Tid, when non-zero, is used as the transaction's tid (restore, copy,
	// replication). It must be greater than LastTransaction(). When zero the
	// storage picks a tid later than both the clock and the last tid.
	Tid Tid
	// Status is the status to commit with; 0 means StatusCommitted.
	// Copying a packed transaction passes StatusPacked.
	Status TxnStatus
}

// Txn is a transaction in progress: stores, then Vote, then Finish, or
// Abort at any point. A Txn is used by one goroutine at a time.
type Txn interface {
	// Tid returns the transaction's tid, fixed at Begin.
	Tid() Tid
	// Store writes a new revision of oid based on oldSerial (0 for a new
	// object). Errors: *ConflictError if oldSerial is not the current serial.
	Store(oid Oid, oldSerial Tid, data []byte) error
	// CheckCurrentSerial fails the transaction at Vote with a
	// *ConflictError unless serial is still oid's current serial
	// (ErrNotFound if oid has never existed).
	CheckCurrentSerial(oid Oid, serial Tid) error
	// Delete removes oid (a revision with no data). Errors: *ConflictError
	// if oldSerial is not current, ErrNotFound if oid does not exist.
	Delete(oid Oid, oldSerial Tid) error
	// Restore writes a revision exactly as given, without conflict checks:
	// serial becomes the record's tid; data nil means deletion; a non-zero
	// dataTxn asks for a backpointer to oid's record in that transaction,
	// when the storage has it with the same data.
	Restore(oid Oid, serial Tid, data []byte, dataTxn Tid) error
	// Undo writes revisions that reverse transaction tid and returns the
	// oids it touched. Errors: *UndoError.
	Undo(ctx context.Context, tid Tid) ([]Oid, error)
	// Vote writes the transaction durably enough to be finished; after a
	// successful Vote, Finish cannot fail for data reasons.
	Vote(ctx context.Context) error
	// Finish makes the transaction committed and durable (fsynced) and
	// releases the commit lock. It returns the committed tid.
	Finish(ctx context.Context) (Tid, error)
	// Abort discards the transaction and releases the commit lock. It is
	// idempotent and safe after a failed Vote.
	Abort() error
}

// SplitFinisher is implemented by transactions whose Finish, once the
// transaction is committed and durable on this host, waits for more: a
// primary in sync durability waits for its secondaries' acknowledgements.
// FinishDurable does the first part and returns the wait (nil when there
// is none) for the caller to run where it holds up nothing else — a ZEO
// server keeps serving the client's other requests meanwhile. The wait's
// error is what Finish would have returned with the tid. FinishDurable
// then the wait is Finish; a caller that has neither calls Finish.
type SplitFinisher interface {
	FinishDurable(ctx context.Context) (tid Tid, wait func(context.Context) error, err error)
}

// OidReserver is implemented by storages that record the new oids they
// may hand out (core/fs.FileStorage, in Data.fs.oid), so that as a
// primary — after a restart, a promotion — they never hand one out twice,
// and by what wraps one (core/primary.Primary, forwarding).
type OidReserver interface {
	// OidReservation returns the greatest oid the storage may hand out
	// before it records (or is told of) more; a primary tells its
	// secondaries.
	OidReservation() Oid
	// NoteOidReservation records that the primary this storage
	// replicates may have handed out new oids up to high.
	NoteOidReservation(high Oid) error
	// SkipOids moves the next new oid at least n past every oid the
	// storage holds, handed out or reserved (a promotion).
	SkipOids(n uint64) error
}

// TxnIterator walks committed transactions in tid order.
type TxnIterator interface {
	// Next returns the next transaction with its records, or io.EOF.
	Next(ctx context.Context) (*TxnInfo, error)
	// Close releases the iterator. It is idempotent.
	Close() error
}

// Iterable storages can iterate their history.
type Iterable interface {
	// Iterate returns an iterator over transactions with start <= tid <=
	// stop (both inclusive; 0 and MaxTid for "everything").
	Iterate(ctx context.Context, start, stop Tid) (TxnIterator, error)
}

// Undoer storages can undo transactions.
type Undoer interface {
	// UndoLog returns undoable transactions newest first, skipping the
	// first `first` ones and returning at most last-first of them. A nil
	// filter accepts everything.
	UndoLog(ctx context.Context, first, last int, filter func(*UndoInfo) bool) ([]UndoInfo, error)
}
