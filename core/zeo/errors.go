package zeo

import (
	"errors"
	"fmt"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Exception qualnames ClientStorage turns back into exceptions.
const (
	excPOSKeyError      = "ZODB.POSException.POSKeyError"
	excConflict         = "ZODB.POSException.ConflictError"
	excReadConflict     = "ZODB.POSException.ReadConflictError"
	excReadOnly         = "ZODB.POSException.ReadOnlyError"
	excStorageTxn       = "ZODB.POSException.StorageTransactionError"
	excMultipleUndo     = "ZODB.POSException.MultipleUndoErrors"
	excStorageError     = "ZODB.POSException.StorageError"
	excKeyError         = "builtins.KeyError"
	excValueError       = "builtins.ValueError"
	excTypeError        = "builtins.TypeError"
	excNotImplemented   = "builtins.NotImplementedError"
	msgConflict         = "database conflict error"
	msgReadConflict     = "database read conflict error"
	errStorageTxnPrefix = "storage transaction error: "
)

// Errors the session raises about the protocol's use.
var (
	// errNotRegistered: a call other than register before register.
	errNotRegistered = errors.New("register() must be called first")
	// errReplied: the handler queued its reply itself.
	errReplied = errors.New("reply already queued")
)

// txnError is a StorageTransactionError: the client misused the
// two-phase commit (a store without tpc_begin, a vote for another
// transaction...).
type txnError struct{ msg string }

func (e *txnError) Error() string { return errStorageTxnPrefix + e.msg }
func (e *txnError) Unwrap() error { return zodb.ErrTransaction }

func txnErrorf(format string, a ...any) error { return &txnError{fmt.Sprintf(format, a...)} }

// readConflict marks a ConflictError found by checkCurrentSerialInTransaction.
type readConflict struct{ *zodb.ConflictError }

func (e readConflict) Unwrap() error { return e.ConflictError }

// clientError is an error reply with a given class and args.
type clientError struct {
	qualname string
	args     []*pyval.Value
}

func (e *clientError) Error() string {
	return fmt.Sprintf("%s%s", e.qualname, pyval.Tuple(e.args...))
}

// valueError is a Python ValueError carrying msg.
func valueError(msg string) error {
	return &clientError{qualname: excValueError, args: []*pyval.Value{pyval.Str(msg)}}
}

// errorPayload turns err into the (qualname, payload) of an error reply.
func errorPayload(err error) (string, *pyval.Value) {
	var (
		nf   *zodb.NotFoundError
		rc   readConflict
		ce   *zodb.ConflictError
		ue   *zodb.UndoError
		cle  *clientError
		te   *txnError
		argE *argError
	)
	switch {
	case errors.As(err, &cle):
		return cle.qualname, pyval.Tuple(cle.args...)
	case errors.As(err, &nf):
		return excPOSKeyError, pyval.Tuple(oidValue(nf.Oid))
	case errors.As(err, &rc):
		return excReadConflict, conflictPayload(msgReadConflict, rc.ConflictError)
	case errors.As(err, &ce):
		return excConflict, conflictPayload(msgConflict, ce)
	case errors.As(err, &ue):
		reason := ue.Reason
		if ue.Tid != 0 {
			reason = fmt.Sprintf("transaction %s: %s", ue.Tid, ue.Reason)
		}
		return excMultipleUndo, pyval.Dict(pyval.Str("_errs"),
			pyval.List(pyval.Tuple(oidValue(ue.Oid), pyval.Str(reason))))
	case errors.As(err, &te):
		return excStorageTxn, pyval.Tuple(pyval.Str(te.msg))
	case errors.Is(err, zodb.ErrReadOnly):
		return excReadOnly, pyval.Tuple()
	case errors.Is(err, zodb.ErrTransaction):
		return excStorageTxn, pyval.Tuple(pyval.Str(err.Error()))
	case errors.As(err, &argE):
		return excTypeError, pyval.Tuple(pyval.Str(err.Error()))
	case errors.Is(err, zodb.ErrNotFound):
		return excPOSKeyError, pyval.Tuple(pyval.Str(err.Error()))
	case errors.Is(err, zodb.ErrNotSupported):
		return excNotImplemented, pyval.Tuple(pyval.Str(err.Error()))
	default:
		return excStorageError, pyval.Tuple(pyval.Str(err.Error()))
	}
}

// conflictPayload is the dict ClientStorage rebuilds a ConflictError from.
func conflictPayload(msg string, ce *zodb.ConflictError) *pyval.Value {
	if ce.Reason != "" {
		msg += " (" + ce.Reason + ")"
	}
	return pyval.Dict(
		pyval.Str("message"), pyval.Str(msg),
		pyval.Str("oid"), oidValue(ce.Oid),
		pyval.Str("serials"), pyval.Tuple(tidValue(ce.Committed), tidValue(ce.Old)),
		pyval.Str("class_name"), pyval.None(),
	)
}
