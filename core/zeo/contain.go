package zeo

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// An internal error is a panic in the code serving one client: a bug in
// zrs (such as a decoder that trusted its input), never the client's
// doing. Without a recover, a panic in any connection's goroutine ends the
// daemon and every client's connection with it. contain, deferred at the
// top of each goroutine of a session, ends only that connection instead
// and logs the panic with its stack.
//
// Ending the connection runs the session's clean-up as a disconnect does:
// its transaction is aborted, the commit lock released. That is safe
// only if the panic left nothing that other clients share in a state
// they cannot use: a lock that stays held, a storage transaction that
// cannot be aborted. The code between taking and releasing shared locks
// releases them when a panic unwinds through it where it can (deferred
// unlocks), but a panic inside the storage may leave the storage's own
// locks held. So after containing a panic the server checks, each step
// bounded by checkWithin:
//
//   - no transaction the connection committed is left unpublished (its
//     invalidations not sent: other clients' caches would stay stale);
//   - the connection's clean-up finished (its transaction is aborted);
//   - the commit lock is not held by that connection;
//   - the publication lock can be taken (loads and commits use it);
//   - the storage answers (LastTransaction takes its state lock).
//
// If a step fails or does not finish in time, the server calls
// Options.Fatal: it cannot go on, and a restart (the service manager's)
// recovers the storage from the file, as after a crash. Otherwise the
// other clients never noticed.

// defaultCheckWithin bounds each step of the check after an internal
// error. The commit lock's holder may legitimately be another client
// committing a large transaction, so the check never waits for the lock
// itself, only for the failed session to let go of it.
const defaultCheckWithin = 30 * time.Second

// contain recovers a panic of one of the session's goroutines (doing
// what); it must be deferred directly. The connection is closed and, once
// its clean-up has run, the server checks its shared state. cleanup, if
// given, releases what the panicking goroutine owned that the session's
// clean-up leaves to it (a vote's commit lock).
func (ss *session) contain(doing string, cleanup func()) {
	r := recover()
	if r == nil {
		return
	}
	s := ss.srv
	s.stats.internalErrors.Add(1)
	s.log.Error("zeo: internal error while "+doing+"; closing this client's connection (a bug in zrs: please report it with this log)",
		"peer", ss.peer, "label", ss.labelString(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	cleaned := make(chan struct{})
	go s.checkAfter(ss, fmt.Errorf("internal error while %s for %s: %v", doing, ss.peer, r), cleaned)
	ss.close(nil)
	defer close(cleaned)
	if cleanup != nil {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("zeo: internal error while cleaning up after an internal error", "peer", ss.peer, "panic", fmt.Sprint(r))
			}
		}()
		cleanup()
	}
}

// checkAfter checks that what clients share is usable after an internal
// error in the session ss (see contain), once the panicking goroutine's
// clean-up has run (cleaned) and the session's own, and calls the Fatal
// option if not.
func (s *Server) checkAfter(ss *session, cause error, cleaned <-chan struct{}) {
	d := s.checkWithin
	fail := func(what string) {
		err := fmt.Errorf("zeo: %s after an %v; the server cannot go on safely", what, cause)
		s.log.Error(err.Error())
		if s.opts.Fatal != nil {
			s.opts.Fatal(err)
			return
		}
		panic(err)
	}
	if tid := zodb.Tid(ss.unpublished.Load()); tid != 0 {
		fail(fmt.Sprintf("transaction %s was committed but not published to the other clients (their caches would stay stale)", tid))
		return
	}
	timeout := time.After(d)
	for _, done := range []<-chan struct{}{cleaned, ss.ended} {
		select {
		case <-done:
		case <-timeout:
			fail(fmt.Sprintf("the connection's clean-up (aborting its transaction) did not finish within %v", d))
			return
		}
	}
	if s.holder.Load() == ss {
		fail("the commit lock was still held by the failed connection after its clean-up")
		return
	}
	if !within(d, func() {
		s.pub.Lock()
		//lint:ignore SA2001 being able to take the lock is the check
		s.pub.Unlock()
	}) {
		fail(fmt.Sprintf("the publication lock could not be taken within %v", d))
		return
	}
	if !within(d, func() { s.st.LastTransaction() }) {
		fail(fmt.Sprintf("the storage did not answer within %v", d))
		return
	}
	s.log.Warn("zeo: state shared by all clients checked after the internal error: serving on", "peer", ss.peer)
}

// within reports whether fn returns, without panicking, within d. When it
// does not return, fn goes on in the background.
func within(d time.Duration, fn func()) bool {
	done := make(chan bool, 1)
	go func() {
		defer func() { done <- recover() == nil }()
		fn()
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(d):
		return false
	}
}
