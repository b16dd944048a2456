package secondary

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// ApplyObserver is told of each replicated transaction committed locally:
// its tid and how long applying it took, from its Begin to its report
// (restores, vote, the fsync of finish, and any wait for earlier
// transactions' fsyncs and reports; not the time to receive it). Calls
// come one at a time, in tid order: keep it short.
type ApplyObserver func(tid zodb.Tid, took time.Duration)

// observers holds the monitoring hooks and state of a Secondary that the
// replication loop updates without taking the Secondary's mutex.
type observers struct {
	apply      atomic.Pointer[ApplyObserver]
	commits    atomic.Pointer[func(tid zodb.Tid, oids []zodb.Oid)]
	ownCommits atomic.Pointer[func(tid zodb.Tid, took time.Duration, err error)] // after promotion
	internal   atomic.Pointer[func()]                                            // ObserveInternalErrors

	mu        sync.Mutex
	idle      bool      // waiting for the primary with nothing received pending; guarded by mu
	idleSince time.Time // when idle became true; guarded by mu

	promoting  atomic.Bool // Promote started: Run refuses to start
	promoted   atomic.Bool // Promote finished: the storage is writable
	unfinished atomic.Bool // a Promote gave up (its context ended) and none has finished since
	promoteMu  sync.Mutex  // serialises Promote
	promotedAt time.Time   // guarded by promoteMu
}

// ObserveApplies sets fn to be called after each replicated transaction
// is committed locally (nil removes it). Metrics use it.
func (s *Secondary) ObserveApplies(fn ApplyObserver) {
	if fn == nil {
		s.obs.apply.Store(nil)
		return
	}
	s.obs.apply.Store(&fn)
}

// WatchCommits sets fn to be called, in tid order, after each replicated
// transaction is committed locally and visible to loads, with the oids it
// changed (nil removes it). A ZEO server serving the replica uses it to
// send invalidations to its read-only clients. Calls come one at a time,
// after Options.OnCommit: keep it short.
func (s *Secondary) WatchCommits(fn func(tid zodb.Tid, oids []zodb.Oid)) {
	if fn == nil {
		s.obs.commits.Store(nil)
		return
	}
	s.obs.commits.Store(&fn)
}

// ObserveInternalErrors sets fn to be called each time a connection to
// the primary ends on an internal error (a contained panic, a bug in zrs:
// contain.go); nil removes it. Metrics use it.
func (s *Secondary) ObserveInternalErrors(fn func()) {
	if fn == nil {
		s.obs.internal.Store(nil)
		return
	}
	s.obs.internal.Store(&fn)
}

func (o *observers) setIdle(idle bool) {
	o.mu.Lock()
	if idle && !o.idle {
		o.idleSince = time.Now()
	}
	o.idle = idle
	o.mu.Unlock()
}

// Waiting reports whether the secondary is connected and waiting for the
// primary's next transaction with nothing received and not yet applied,
// and since when. zrs2 primaries send every transaction as soon as it is
// committed and do not announce their last tid, so this is the
// secondary's best "caught up" indicator: true means it has applied all
// the primary has sent so far.
func (s *Secondary) Waiting() (since time.Time, ok bool) {
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	if !s.obs.idle {
		return time.Time{}, false
	}
	return s.obs.idleSince, true
}
