// Package primary serves a ZODB storage's committed transactions to
// secondaries over the zc.zrs replication protocol (zrs2.0 and zrs2.1).
//
// A Primary wraps a storage (a FileStorage) and passes every storage call
// through. Transactions committed through Primary.Begin wake, once
// finished, every connected secondary's stream through a coalescing "new
// head" signal: the commit never waits for a secondary and never queues
// anything for one.
//
// Each connected secondary gets one goroutine that reads the handshake
// (protocol name, at most 8 bytes, then the secondary's last tid), finds
// the first transaction after that tid, and streams from the file: one
// transaction in memory at a time plus a 64 KiB write buffer, however far
// behind the secondary is. When caught up it flushes and waits for the
// next commit. A second goroutine per connection reads what the secondary
// sends: empty keep-alive frames; anything else ends the stream (after it
// catches up, as zc.zrs does).
//
// # Guarantees
//
//   - Replication is asynchronous. When a commit returns, the transaction
//     is fsynced on the primary only; it reaches a secondary later, and a
//     transaction whose commit returned may be lost if the primary's disk
//     is lost before a secondary received it. zrs2 has no
//     acknowledgements: Status reports what was written to each
//     connection, not what the secondary applied.
//   - A slow, stalled or dead secondary never blocks or slows a commit
//     and never grows the primary's memory: its stream just falls behind
//     and resumes from the file.
//   - Transactions are sent in tid order with their tids, statuses,
//     metadata and record data (backpointers resolved, with the data_txn
//     hint), so a secondary can reproduce the file.
//   - A secondary that says it has a transaction newer than our last one
//     is refused (logged, connection closed), as zc.zrs refuses it with
//     TidTooHigh; it retries on its own schedule.
//   - zrs2 cannot detect a secondary from a different database or a
//     diverged history whose last tid is lower than ours: it is streamed
//     the transactions after its tid, as zc.zrs does. When that tid is not
//     one of ours the primary logs a warning, nothing more (a pack can
//     legitimately remove it).
//
// Shutdown stops accepting, lets every stream send what was committed,
// then closes the storage; Close does the same bounded by 60 s.
package primary
