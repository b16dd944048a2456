// Package zeo is a ZEO 5/6 storage server: unmodified Python
// applications using ZODB.DB(ZEO.ClientStorage(...)) read and write a zrs
// storage through it, and read-only clients follow a replica.
//
// # Protocol
//
// Every message is a frame (a big-endian uint32 length, then the
// payload). The server speaks first with "Z5" (pickles, the default) or
// "M5" (msgpack, Options.Msgpack); the client echoes the codec byte and
// "5", or sends "ruok" and gets one JSON status document. After that both
// directions carry (msgid, flags, name, args) tuples in the chosen codec
// (codec.go): calls with flags False, one-way calls with True, replies
// ".reply" with flags 0 and error replies with flags 2 and args
// (exception qualname, payload) that ClientStorage turns back into
// POSKeyError, ConflictError (with oid and serials), ReadOnlyError,
// StorageTransactionError and so on. docs/PROTOCOL.md lists every method.
//
// # Sessions and the commit pipeline
//
// Each connection has a reader goroutine that decodes and serves
// requests in order and a writer goroutine that drains an ordered
// outbound queue, so a slow client never blocks anyone else. Data calls
// (storea, checkCurrentSerialInTransaction, deleteObject, restorea,
// undoa) are only recorded between tpc_begin and vote; vote takes the
// server's commit lock (waiting without blocking the connection's other
// requests), begins the storage transaction, replays the record and
// votes. Store conflicts are not resolved here: like a Python server with
// client-conflict-resolution, vote answers a list of {oid, serials, data}
// dicts, aborts the storage transaction and keeps the session's
// transaction open; the client resolves them with its own classes
// (BTrees, Length, application code), stores again and votes again.
// Unlike Python's server, the commit lock stays held while the client
// resolves, so nothing commits over the states it resolves against and
// its next vote succeeds (otherwise a busy object starves its writers:
// ZEO's InvalidationTests); the conflicts are answered once the
// transactions they name are published, so that the client can load them
// (and so is a vote's ConflictError or ReadConflictError, so that the
// client retries after their invalidations).
// The lock is held until tpc_finish, tpc_abort or the connection ends
// (Options.TransactionTimeout bounds it). tpc_finish hands it on before
// the storage's fsync (group commit, see core/fs): the next transaction
// writes behind this one while it waits, and finished transactions are
// published strictly in commit order, each after its fsync. A storage
// whose Finish waits for more after the fsync (zodb.SplitFinisher: a
// primary with sync durability, waiting for its secondaries) has that
// wait, the publication and the reply run in a goroutine of their own,
// so that the connection's other requests are served meanwhile.
//
// # Invalidations and ordering
//
// After each commit every other registered connection gets
// invalidateTransaction(tid, oids) — also on a replica, for every
// replicated transaction (Watcher). Publishing a transaction (queueing
// its invalidations everywhere and advancing the published tid) happens
// under the write side of a lock whose read side is held by each load
// from computing its answer until its reply is queued, and loads never
// look past the published tid. So per connection: invalidation tids only
// grow and follow the tid register returned; no invalidation for T is
// queued before the reply of a load computed without T; and a commit's
// invalidations precede any later tpc_finish reply.
//
// getInvalidations(tid) is answered for any tid still in the file, by
// iterating the storage from it, not only for a short in-memory queue: a
// client restarting with a persistent cache keeps it after a server
// restart however many transactions it missed. It answers None (the
// client drops its cache) only when tid is not a transaction of this file.
//
// # Internal errors
//
// A panic serving one connection (a bug in zrs) closes that connection
// only, as a disconnect would, and is logged with its stack; the server
// then checks that the state every client shares was left usable and
// calls Options.Fatal if not (see contain.go).
//
// # Why the codecs are written here
//
// Pickles go through core/pyval, whose encoder reproduces the bytes
// Python's ZEO writes (protocol 3, no memo) and whose decoder keeps dict
// order and tells bytes, text and tuples apart; og-rek loses dict order
// and cannot be made to write zodbpickle's exact output. msgpack uses
// github.com/vmihailenco/msgpack/v5's low-level encoder and decoder, with
// the mapping to pyval values done here, for the same reasons: map order
// (a transaction extension is re-pickled into the file from it) and the
// bin/str distinction.
//
// # What is not here yet
//
// Blobs (storeBlob*, sendBlob) and pack, which answer a clear error.
//
// A transaction's data calls are kept in memory up to Options.SpillBytes
// and in an unlinked temporary file after that, until vote; a
// transaction larger than Options.MaxTxnBytes is refused. One message may
// be as large as that (plus FrameOverhead), so that a single object of
// any size the transaction limit allows can be stored; a longer one
// closes the connection. Clients that did not register writable (read-only
// ones, and every client before its register) may send at most
// FrameOverhead in one message.
package zeo
