package secondary

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// An internal error is a panic in the replication: a bug in zrs, never
// the primary's doing (a decoder that trusted a frame, say). Without a
// recover it ends the daemon, and with it the replica's ZEO service to
// its read-only clients. What the secondary contains, and what it leaves
// to a restart:
//
//   - A panic while reading the primary's connection (the answer to the
//     handshake, a transaction, a heartbeat) or writing to it
//     (acknowledgements, keep-alives) concerns that connection alone: the
//     code involved holds no lock and writes nothing to the storage. It
//     is logged at error level with its stack, counted
//     (ObserveInternalErrors), and ends the connection as a failed read
//     does: the transaction being applied is aborted, and the secondary
//     reconnects after its back-off from its last committed tid.
//   - A panic inside the storage (Begin, Restore, Vote, Finish, Abort) or
//     in what follows a commit (Options.OnCommit, the commit watcher that
//     sends a replica's invalidations, a zrs3 acknowledgement's hand-off)
//     is not contained. It may leave the storage's commit lock held, so
//     that replication would stop without a word, or a committed
//     transaction unannounced to ZEO clients, whose caches would then stay
//     stale; nothing here could check that the file and the caches agree.
//     The process ends, the service manager restarts it, and the file is
//     recovered as after a crash, which keeps every fsynced transaction
//     (what the crash tests prove). The ZEO server makes the other choice
//     for its own sessions because it can check the state its clients
//     share (core/zeo, contain.go); a storage's internals it cannot.

// errInternal marks a contained panic (see above).
var errInternal = errors.New("internal error (a bug in zrs; the log has its stack)")

// internalError logs the panic r, recovered while doing what, with its
// stack, counts it, and returns it as the connection's error. Call it
// from the deferred function that recovered r, so that the stack is the
// panic's.
func (s *Secondary) internalError(doing string, r any) error {
	s.log.Error("internal error while "+doing+"; closing the connection to the primary and reconnecting (a bug in zrs: please report it with this log)",
		logKeyPrimary, s.addr, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if fn := s.obs.internal.Load(); fn != nil {
		(*fn)()
	}
	return fmt.Errorf("%w while %s: %v", errInternal, doing, r)
}

// guard runs fn, a read from or write to the primary's connection, and
// returns a panic in it as an error (see above).
func (s *Secondary) guard(doing string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.internalError(doing, r)
		}
	}()
	return fn()
}

// containWriter recovers a panic of a goroutine writing to the primary
// (doing what) and ends the connection with it: the cycle's reader then
// fails with the cancellation's cause. It must be deferred directly.
func (s *Secondary) containWriter(doing string, cancel context.CancelCauseFunc) {
	if r := recover(); r != nil {
		cancel(s.internalError(doing, r))
	}
}
