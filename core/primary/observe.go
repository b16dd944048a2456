package primary

import (
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// CommitObserver is told of each transaction finished through the
// primary: its tid (0 on failure), how long Finish took (the local write
// and fsync, and in sync mode the wait for acknowledgements), and Finish's
// error; and of each vote that failed in the storage, not for the
// client's own reasons (tid 0, the vote's time and error; see txn.Vote). It runs in the committing
// goroutine: keep it short.
type CommitObserver func(tid zodb.Tid, took time.Duration, err error)

// ObserveCommits sets fn to be called after each Finish through the
// primary, and after each Vote that fails in the storage (tid 0; nil
// removes it). Metrics use it.
func (p *Primary) ObserveCommits(fn CommitObserver) {
	if fn == nil {
		p.commitObs.Store(nil)
		return
	}
	p.commitObs.Store(&fn)
}

// observeCommit reports a Finish (or a failed Vote) that started at start.
func (p *Primary) observeCommit(start time.Time, tid zodb.Tid, err error) {
	if fn := p.commitObs.Load(); fn != nil {
		(*fn)(tid, time.Since(start), err)
	}
}

// ObserveRefusals sets fn to be called each time a secondary's handshake
// is refused (another database, a diverged history, a protocol error; the
// log says which, rate-limited); nil removes it. Metrics use it.
func (p *Primary) ObserveRefusals(fn func()) {
	if fn == nil {
		p.refusalObs.Store(nil)
		return
	}
	p.refusalObs.Store(&fn)
}

// ObserveInternalErrors sets fn to be called each time a stream ends on
// an internal error (a panic in zrs, logged with its stack; see
// stream.contain); nil removes it. Metrics use it.
func (p *Primary) ObserveInternalErrors(fn func()) {
	if fn == nil {
		p.internalObs.Store(nil)
		return
	}
	p.internalObs.Store(&fn)
}
