// Package secondary replicates a ZODB storage from a primary speaking the
// zc.zrs protocol (zrs2.0) or the native protocol (zrs3), and serves the
// replica read-only.
//
// By default (Options.Protocol ProtoAuto) it speaks zrs3 and falls back to
// zrs2.0 for a primary that closes the connection on "zrs3", as a zc.zrs
// primary does, unless that primary answered zrs3 before in this process:
// a zrs primary closes handshakes the same way while stopping, and only
// zrs3 lets it refuse a diverged history. With zrs3 it announces its database identity and the
// digests of its last transaction, so a primary of another database or a
// diverged history refuses it (and it refuses a primary announcing another
// database); it receives the stream with heartbeats, zstd-compressed
// unless the primary is on the same host (unix socket, loopback),
// reconnects when even heartbeats stop (Options.IdleTimeout), and
// acknowledges each transaction once fsynced, which sync primaries wait
// for. The guarantees below about what zrs2 cannot detect hold for zrs2.0
// connections only.
//
// A Secondary wraps a writable storage (a FileStorage, or a
// primary.Primary around one to relay to further secondaries). Run
// connects to the primary, sends the protocol name ("zrs3", or "zrs2.0")
// and the local last tid (with zrs3, a hello after it), and
// applies each transaction it receives with Begin (the primary's tid and
// status), Restore of every record with its data_txn hint, Vote and
// Finish. Finish runs on a goroutine of its own while the next
// transaction is received and written, so that one fsync covers the
// transactions finished while the previous fsync ran; a transaction is
// reported (OnCommit, the commit watcher, a zrs3 acknowledgement) once
// fsynced, in tid order. On any failure it aborts the transaction being
// applied, waits for those already finishing, disconnects, backs off
// (exponentially, with jitter, capped) and reconnects from the last tid
// committed locally, forever. A panic in the code reading or writing the
// primary's connection (a bug in zrs) ends that connection the same way,
// logged with its stack; one inside the storage is left to end the
// process (contain.go says why).
//
// To clients the Secondary is read-only: Begin and NewOid fail with
// zodb.ErrReadOnly; loads, history, iteration and the undo log are served
// from the local storage.
//
// # Guarantees
//
//   - A transaction is visible on the secondary only once it is fully
//     received, its stream checksum verified, and committed (fsynced)
//     locally; a transaction cut by a disconnect is aborted and received
//     again in full after reconnecting.
//   - The local file holds the primary's transactions in the primary's
//     order with the primary's tids, so it is a prefix of the primary's
//     history — as far as zrs2 can tell. The protocol carries no database
//     identity and no history check: its checksum is seeded with the
//     secondary's own last tid and only protects the transport. A
//     secondary pointed at a different database, or at a primary whose
//     history diverged below the secondary's last tid (an old primary
//     rejoining after a failover), applies that primary's later
//     transactions without noticing. It only notices a primary that is
//     behind it: that primary refuses it, and nothing is applied. (A zrs
//     primary also refuses a last tid missing from its never-packed
//     history; zc.zrs does not.)
//   - The secondary lags the primary by the time to transfer and fsync
//     what was committed. It slows the primary's commits only when the
//     primary asks for sync durability, whose commits wait for zrs3
//     secondaries' acknowledgements.
//
// The secondary applies every transaction it is sent; it never writes
// anything else to the storage and never sends anything to the primary
// but the handshake (with zrs3, the hello), zrs3 acknowledgements and,
// with Options.KeepAlive, empty keep-alive frames.
package secondary
