// Package zodb is the vocabulary shared by every zrs storage: transaction ids
// ([Tid]), object ids ([Oid]), the metadata of a transaction ([TxnMeta]), the
// records an iterator yields ([TxnInfo], [DataRecord]), the sentinel errors
// callers branch on, and the storage interfaces ([Storage], [Committer],
// [Restorer], [Iterable], [Undoer]).
//
// The types mirror ZODB's Python interfaces (IStorage, IStorageRestoreable,
// IStorageIteration, IStorageUndoable) closely enough that a ZEO server can
// map each ZEO method onto one Go call, and a replication stream onto
// Restore. They carry no I/O of their own.
package zodb
