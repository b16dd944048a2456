// Package faultproxy is a TCP proxy that injects network faults between a
// client and a server, for replication tests (a secondary dialling a
// primary over loopback through the proxy).
//
// # Contract
//
// New binds a listener and forwards every accepted connection to one target
// address. Each proxied connection has two directions, ClientToServer and
// ServerToClient, each pumped by its own goroutine that reads a chunk from
// one side and writes it to the other. A half-close (EOF from one side) is
// passed on as a half-close; a read or write error closes both sides.
//
// Faults are set at run time through methods on *Proxy, are safe for
// concurrent use, and apply to the connections open at the time of the call
// and to every connection accepted later, until changed or cleared by Heal:
//
//   - Delay(dir, d): wait d before forwarding each chunk read in dir.
//   - Stall(dir, true): forward nothing in dir. The proxy holds at most one
//     chunk; the rest queues in kernel buffers, so the sender eventually
//     blocks. The connection stays open; Stall(dir, false) resumes and
//     delivers everything in order.
//   - CutAfter(dir, n): forward exactly n more bytes in dir (counted from
//     the call for open connections, from the start for new ones), then
//     close both sides of the connection. The bytes after the cut are
//     dropped. n < 0 clears the cut.
//   - FlipBit(dir, off, bit): flip bit (0 = least significant) of the byte
//     at offset off of the stream in dir, counted from the connection's
//     start. Open connections that have already passed off are unchanged.
//   - FlipRandom(dir, p, seed): flip one random bit of each forwarded byte
//     with probability p. Each connection draws from its own generator
//     seeded with (seed, connection number), one draw per byte, so the
//     flips depend only on the byte stream and the connection number
//     (1 for the first accepted connection), never on how the stream was
//     chunked.
//   - Refuse(true): accept new connections and close them at once.
//   - DropAll(): close every open connection; new ones are still accepted.
//
// A fault that should hit one connection only (cut the stream once, then let
// the client reconnect cleanly) is set deterministically by bracketing it
// with Refuse: Refuse(true); CutAfter(dir, n); wait until Stats().Cuts
// grows; CutAfter(dir, -1); Refuse(false).
//
// Stats reports bytes forwarded per direction and counts of accepted,
// refused, cut and dropped connections and flipped bits.
//
// # Lifecycle
//
// Close (or the cancellation of the context given to New) stops accepting,
// closes every proxied connection and waits for all of the proxy's
// goroutines to return, so a test that has called Close leaks nothing.
// Close is idempotent.
//
// The proxy is a test tool: it trades throughput for simple, exact fault
// semantics and makes no attempt to be fast.
package faultproxy
