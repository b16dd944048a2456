// Package fs is zrs's FileStorage: the ZODB "Data.fs" format, read and
// written byte-compatibly with Python ZODB.
//
// A Data.fs file is a 4-byte magic ("FS30", or "FS21" written by Python 2)
// followed by transaction records, each a 23-byte header, the user,
// description and extension strings, the data records, and an 8-byte
// trailer repeating the transaction's length. format.go mirrors these
// records field by field; the storage keeps an oid → position index in
// memory, saved beside the file as Data.fs.index in Python's own format so
// either implementation can open the other's files without a rescan.
//
// # Durability
//
// A commit writes the whole transaction with status 'c' at vote, then at
// finish flips the status byte to ' ' and fsyncs the file before the commit
// is reported. An open in read-write mode cuts off a trailing 'c' or torn
// transaction (saving the bytes to Data.fs.trN) exactly as Python does, so
// a crash at any instant leaves a file both implementations open. It then
// fsyncs Data.fs before serving anything: transactions whose writer died
// waiting for their fsync are marked committed but may be in the page
// cache only. (A Data.fs.index it rebuilds is saved after that; failing to
// save it is a warning, since the index is a cache of the file.)
//
// Commits are grouped: Finish releases the commit lock once the status
// byte is written, and waits for an fsync that covers its transaction. The
// next transaction meanwhile writes behind it (checked for conflicts
// against it), and one fsync makes every transaction finished by then
// durable. Readers — loads, iterators, LastTransaction — see a transaction
// only once it is fsynced. Python's FileStorage holds its lock through the
// fsync; on a disk whose fsync is slow, concurrent committers are where
// the difference shows.
//
// New oids are reserved in blocks recorded in Data.fs.oid, zrs's own file
// (see oids.go), so that a reopened storage never hands out an oid a ZEO
// client may still hold from before.
//
// # Errors
//
// Damage is reported as a *RecordError naming the file, the record and its
// byte offset; nothing in this package panics on bad input.
//
// This package is written by hand: no maintained Go library reads and
// writes FileStorage (the one other Go reader is read-only and under a
// licence we cannot link).
package fs
