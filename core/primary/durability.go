package primary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// ErrNotReplicated: a commit in sync mode was not acknowledged by enough
// secondaries in time (or its context ended while waiting). The
// transaction IS committed and fsynced on the primary — its tid is
// returned with the error, and secondaries will still receive it — but
// the guarantee that it survives the loss of the primary was not met.
var ErrNotReplicated = errors.New("transaction committed on the primary but not acknowledged by enough secondaries")

// DurabilityMode says what a commit waits for.
type DurabilityMode int

const (
	// Async: a commit returns once fsynced on the primary (zc.zrs's only
	// mode). The zero value.
	Async DurabilityMode = iota
	// Sync: a commit returns once fsynced on the primary and acknowledged
	// (applied and fsynced) by Quorum native secondaries.
	Sync
)

func (m DurabilityMode) String() string {
	if m == Sync {
		return "sync"
	}
	return "async"
}

// TimeoutAction says what a sync commit does when its secondaries do not
// acknowledge it within Durability.Timeout.
type TimeoutAction int

const (
	// Fail: Finish returns the tid with an error wrapping
	// ErrNotReplicated. Every later commit waits again. The zero value.
	Fail TimeoutAction = iota
	// Degrade: Finish succeeds, the primary logs at error level that it
	// is now replicating asynchronously, and later commits do not wait
	// until Quorum secondaries have caught up to within half the timeout
	// (logged as well; see recovered).
	Degrade
)

func (a TimeoutAction) String() string {
	if a == Degrade {
		return "degrade"
	}
	return "fail"
}

// DefaultSyncTimeout bounds a sync commit's wait when Durability.Timeout
// is zero.
const DefaultSyncTimeout = 5 * time.Second

// Durability configures synchronous replication.
type Durability struct {
	Mode DurabilityMode
	// Quorum is how many secondaries (ANY k of the connected native ones
	// that send acknowledgements) must acknowledge a commit; 0 means 1.
	Quorum int
	// Timeout bounds the wait; 0 means DefaultSyncTimeout.
	Timeout time.Duration
	// OnTimeout: Fail (the default) or Degrade.
	OnTimeout TimeoutAction
}

func (d Durability) withDefaults() Durability {
	if d.Quorum <= 0 {
		d.Quorum = 1
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultSyncTimeout
	}
	return d
}

// String is "async" or e.g. "sync ANY 1, timeout 5s, fail".
func (d Durability) String() string {
	if d.Mode != Sync {
		return "async"
	}
	return fmt.Sprintf("sync ANY %d, timeout %v, %v", d.Quorum, d.Timeout, d.OnTimeout)
}

// ParseDurabilityMode parses "async" or "sync".
func ParseDurabilityMode(s string) (DurabilityMode, error) {
	switch strings.ToLower(s) {
	case "async":
		return Async, nil
	case "sync":
		return Sync, nil
	}
	return 0, fmt.Errorf("durability %q: want async or sync", s)
}

// ParseTimeoutAction parses "fail" or "degrade".
func ParseTimeoutAction(s string) (TimeoutAction, error) {
	switch strings.ToLower(s) {
	case "fail":
		return Fail, nil
	case "degrade":
		return Degrade, nil
	}
	return 0, fmt.Errorf("on sync timeout %q: want fail or degrade", s)
}

// durabilityState is the sync-mode state of a Primary.
type durabilityState struct {
	mu           sync.Mutex
	degraded     bool      // Degrade happened and secondaries have not caught up; guarded by mu
	degradedAt   zodb.Tid  // the commit that timed out; guarded by mu
	asyncLast    zodb.Tid  // the last commit that did not wait, being degraded; guarded by mu
	lastFailLog  time.Time // rate-limits the Fail logs; guarded by mu
	failsNotLogd int       // failures since the last log; guarded by mu
}

// waitReplicated waits, in sync mode, until Quorum native secondaries
// have acknowledged tid.
func (p *Primary) waitReplicated(ctx context.Context, tid zodb.Tid) error {
	d := p.opts.Durability
	if d.Mode != Sync {
		return nil
	}
	if p.stillDegraded(tid) {
		return nil
	}
	timer := time.NewTimer(d.Timeout)
	defer timer.Stop()
	for {
		wake := p.ackSignal.C()
		n := p.countAcked(tid)
		if n >= d.Quorum {
			return nil
		}
		select {
		case <-wake:
			continue
		case <-timer.C:
			// An acknowledgement may have come with the timer: count
			// once more before giving up.
			if n = p.countAcked(tid); n >= d.Quorum {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("primary: commit %s: %w (%d of %d acknowledgements before the caller gave up: %v)",
				tid, ErrNotReplicated, n, d.Quorum, ctx.Err())
		}
		return p.syncTimedOut(tid, n)
	}
}

// syncTimedOut applies OnTimeout to a commit whose wait timed out with n
// acknowledgements.
func (p *Primary) syncTimedOut(tid zodb.Tid, n int) error {
	d := p.opts.Durability
	connected := p.countAcked(0)
	if d.OnTimeout == Degrade {
		// Concurrent commits time out together: the first degrades (and
		// logs), the others only move the commit that recovery waits for
		// to the latest of them.
		p.dur.mu.Lock()
		already := p.dur.degraded
		if !already || tid > p.dur.degradedAt {
			p.dur.degradedAt = tid
		}
		p.dur.degraded = true
		p.dur.mu.Unlock()
		if already {
			p.log.Debug("sync commit timed out while already degraded", logKeyTid, tid, "acks", n)
			return nil
		}
		p.log.Error("SYNC REPLICATION DEGRADED: commits no longer wait for secondaries; a primary failure now loses recent commits",
			logKeyTid, tid, "acks", n, "quorum", d.Quorum, "acking_secondaries", connected, "timeout", d.Timeout)
		return nil
	}
	p.dur.mu.Lock()
	p.dur.failsNotLogd++
	if time.Since(p.dur.lastFailLog) >= 10*time.Second {
		p.log.Error("sync commit not acknowledged in time; the commit fails with ErrNotReplicated (it is committed on the primary)",
			logKeyTid, tid, "acks", n, "quorum", d.Quorum, "acking_secondaries", connected, "timeout", d.Timeout,
			"failed_commits", p.dur.failsNotLogd)
		p.dur.lastFailLog, p.dur.failsNotLogd = time.Now(), 0
	}
	p.dur.mu.Unlock()
	return fmt.Errorf("primary: commit %s: %w (%d of %d acknowledgements in %v)", tid, ErrNotReplicated, n, d.Quorum, d.Timeout)
}

// stillDegraded reports, for the commit of tid, whether sync mode is
// degraded (see recovered); a commit that finds it so does not wait, and
// becomes one the secondaries must catch up with.
func (p *Primary) stillDegraded(tid zodb.Tid) bool {
	p.dur.mu.Lock()
	defer p.dur.mu.Unlock()
	if !p.dur.degraded || p.recovered() {
		return false
	}
	p.dur.asyncLast = max(p.dur.asyncLast, tid)
	return true
}

// recovered ends a degradation (with a log) once Quorum secondaries have
// caught up: acknowledged the commit that timed out, and every commit
// that did not wait since, except those of the last half sync timeout. A
// secondary behind by more would make the next commit wait the whole
// timeout and degrade again, a stall after another; one that keeps up
// within that is never more than a few commits behind under a steady
// load, and would otherwise leave the primary asynchronous as long as the
// load lasts. The next commit's wait covers those commits too
// (acknowledgements are cumulative). The caller holds p.dur.mu and has
// seen p.dur.degraded.
func (p *Primary) recovered() bool {
	d := p.opts.Durability
	recent := zodb.TidFromTime(time.Now().Add(-d.Timeout / 2))
	if p.countAcked(max(p.dur.degradedAt, min(p.dur.asyncLast, recent))) < d.Quorum {
		return false
	}
	p.dur.degraded = false
	p.log.Warn("sync replication restored: commits wait for secondaries again", "quorum", d.Quorum)
	return true
}

// Degraded reports whether sync replication degraded to asynchronous
// after a timeout (Durability.OnTimeout Degrade) and has not recovered
// (checked now, so that a quiet primary whose secondaries caught up does
// not go on reporting it).
func (p *Primary) Degraded() bool {
	p.dur.mu.Lock()
	defer p.dur.mu.Unlock()
	return p.dur.degraded && !p.recovered()
}

// countAcked returns how many connected native secondaries sending
// acknowledgements have acknowledged tid or later. A node is counted once
// however many connections it has (Hello.Node): one that reconnected
// while its old connection is not yet known dead must not count twice.
// The old connection is left to end by itself (a write timeout, TCP):
// closing it here could close a live one, if a late handshake of an
// abandoned connection came last, or if two secondaries shared a name.
func (p *Primary) countAcked(tid zodb.Tid) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var nodes map[string]bool // allocated only once a named node acknowledged
	for s := range p.streams {
		s.mu.Lock()
		if s.native != nil && s.native.acks && s.acked >= tid {
			switch node := s.native.node; {
			case node == "":
				n++
			case !nodes[node]:
				if nodes == nil {
					nodes = make(map[string]bool)
				}
				nodes[node] = true
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
