// Package primary serves a ZODB storage's committed transactions to
// secondaries over the zc.zrs replication protocol (zrs2.0 and zrs2.1) and
// the native protocol zrs3.
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
// catches up, as zc.zrs does). A panic in either goroutine (a bug in zrs)
// is logged with its stack and ends that stream only (stream.contain).
//
// # Guarantees
//
//   - Replication is asynchronous unless Options.Durability says Sync
//     (below). When an asynchronous commit returns, the transaction
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
//   - A zrs2 secondary whose last tid lies between our first and last
//     transactions but is not one of them has a diverged history (an old
//     primary after a failover) unless a pack removed that transaction:
//     in a file that was never packed (its first transaction is not
//     marked packed; zrs itself cannot pack) it is refused, the
//     connection closed. Otherwise zrs2 cannot detect a secondary from a
//     different database or a diverged history whose last tid is lower
//     than ours: it is streamed the transactions after its tid, as zc.zrs
//     does, with a warning when that tid is not one of ours.
//
// # Native secondaries (zrs3)
//
// A secondary that opens with "zrs3" sends its database identity and the
// digests of its last transaction. The primary refuses it (sending the
// reason, which the secondary logs) when the identities differ or its
// history diverged: its last tid is above ours, is not one of our
// transactions, or our transaction there has other content. Otherwise it
// streams as for zrs2, zstd-compressed if offered, with a heartbeat every
// Options.HeartbeatInterval while idle, and reads the secondary's
// acknowledgements (Status: Acked, Lag).
//
// # Sync durability
//
// With Options.Durability Mode Sync, Finish waits after the local fsync
// until Quorum connected zrs3 secondaries acknowledged the transaction
// (applied and fsynced). On timeout the transaction stays committed here:
// OnTimeout Fail returns its tid with an error wrapping ErrNotReplicated;
// OnTimeout Degrade returns success, logs an error, and commits stop
// waiting until Quorum secondaries acknowledged the commit that timed out.
//
// Shutdown stops accepting, lets every stream send what was committed,
// then closes the storage; Close does the same bounded by 60 s.
package primary
