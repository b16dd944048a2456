package zodb

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; the typed errors
// below wrap them and add where.
var (
	// ErrNotFound: the object does not exist at the requested time (never
	// created, deleted, or its creation undone). ZEO reports it as POSKeyError.
	ErrNotFound = errors.New("object not found")
	// ErrNoRevision: the object exists but has no revision before the
	// requested tid. ZEO's loadBefore answers None for it.
	ErrNoRevision = errors.New("no revision before the requested tid")
	// ErrConflict: a store was based on a serial that is no longer current.
	ErrConflict = errors.New("conflict")
	// ErrReadOnly: the storage refuses writes.
	ErrReadOnly = errors.New("storage is read-only")
	// ErrTransaction: the two-phase commit protocol was misused (a store
	// after vote, a second vote, a finish without vote, ...).
	ErrTransaction = errors.New("storage transaction error")
	// ErrUndo: a transaction cannot be undone.
	ErrUndo = errors.New("cannot undo")
	// ErrNotSupported: the operation is not implemented by this storage yet.
	ErrNotSupported = errors.New("not supported")
	// ErrClosed: the storage was closed.
	ErrClosed = errors.New("storage closed")
	// ErrLocked: another process holds the storage's lock file.
	ErrLocked = errors.New("storage locked by another process")
)

// NotFoundError says which object was not found (POSKeyError).
type NotFoundError struct {
	Oid Oid
	Tid Tid // the tid asked about, 0 for "current"
}

func (e *NotFoundError) Error() string {
	if e.Tid != 0 {
		return fmt.Sprintf("object %s not found at tid %s", e.Oid, e.Tid)
	}
	return fmt.Sprintf("object %s not found", e.Oid)
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// ConflictError says which object conflicted and the two serials involved,
// in ZODB's order: Committed is the serial now current in the storage, Old
// is the serial the writer based its change on.
type ConflictError struct {
	Oid       Oid
	Committed Tid
	Old       Tid
	Reason    string // optional extra detail
}

func (e *ConflictError) Error() string {
	s := fmt.Sprintf("conflict on object %s: committed serial %s, writer's serial %s", e.Oid, e.Committed, e.Old)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// UndoError says why a transaction cannot be undone.
type UndoError struct {
	Tid    Tid
	Oid    Oid // 0 when the whole transaction is concerned
	Reason string
}

func (e *UndoError) Error() string {
	if e.Oid != 0 {
		return fmt.Sprintf("cannot undo transaction %s: object %s: %s", e.Tid, e.Oid, e.Reason)
	}
	return fmt.Sprintf("cannot undo transaction %s: %s", e.Tid, e.Reason)
}

// Unwrap makes errors.Is(err, ErrUndo) true.
func (e *UndoError) Unwrap() error { return ErrUndo }
