package primary

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// commitRingSize is how many recent commits the primary remembers to
// report a secondary's lag in transactions and bytes.
const commitRingSize = 8192

// commitMark is one remembered commit: its tid, its sequence number among
// the commits through this Primary, and the end of committed data after
// it (-1 if the storage does not say).
type commitMark struct {
	tid zodb.Tid
	seq int64
	end int64
}

// commitRing remembers the last commitRingSize commits.
type commitRing struct {
	mu    sync.Mutex
	marks []commitMark // circular, len <= commitRingSize; guarded by mu
	seq   int64        // commits recorded; guarded by mu
}

// committedEnd is what a FileStorage tells about its size.
type committedEnd interface{ CommittedEnd() int64 }

// recordCommit remembers a finished commit.
func (p *Primary) recordCommit(tid zodb.Tid) {
	end := int64(-1)
	if ce, ok := p.st.(committedEnd); ok {
		end = ce.CommittedEnd()
	}
	r := &p.commits
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	m := commitMark{tid: tid, seq: r.seq, end: end}
	if len(r.marks) < commitRingSize {
		r.marks = append(r.marks, m)
	} else {
		r.marks[(r.seq-1)%commitRingSize] = m // the oldest: marks[i] holds commit i+1, i+1+size, ...
	}
}

// lagTxns returns how many remembered commits are after tid, and whether
// that is exact (tid is at or after the oldest remembered commit).
func (r *commitRing) lagTxns(tid zodb.Tid) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	oldest := zodb.MaxTid
	for _, m := range r.marks {
		if m.tid > tid {
			n++
		}
		oldest = min(oldest, m.tid)
	}
	return n, len(r.marks) > 0 && tid >= oldest
}

// Lag is how far a secondary is behind the primary.
type Lag struct {
	// Transactions committed on the primary after the secondary's tid;
	// -1 when unknown (more than the primary remembers, or committed
	// before it started and not yet caught up to).
	Transactions int64
	// Bytes of the primary's file after the secondary's tid; -1 when the
	// storage cannot tell.
	Bytes int64
	// Seconds between the secondary's tid and the primary's last tid (tid
	// times), 0 when caught up. A secondary that has nothing yet lacks
	// everything from the primary's first transaction on: its lag is
	// counted from that transaction's tid.
	Seconds float64
}

// lagOf computes the lag of a secondary at tid behind last.
func (p *Primary) lagOf(tid, last zodb.Tid) Lag {
	if tid >= last {
		return Lag{}
	}
	from := tid
	if tid == 0 {
		// The database identity holds the first tid, read once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		id, err := p.identity(ctx)
		cancel()
		if err == nil && !id.IsZero() {
			from = id.First
		}
	}
	l := Lag{Transactions: -1, Bytes: -1, Seconds: last.Time().Sub(from.Time()).Seconds()}
	if n, ok := p.commits.lagTxns(tid); ok {
		l.Transactions = n
	}
	ce, ok := p.st.(committedEnd)
	if !ok {
		return l
	}
	end := ce.CommittedEnd()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	it, err := p.st.Iterate(ctx, tid+1, zodb.MaxTid)
	if err != nil {
		return l
	}
	defer it.Close()
	next, err := it.Next(ctx)
	switch {
	case errors.Is(err, io.EOF):
		l.Bytes = 0
	case err == nil && next.Pos >= 0:
		l.Bytes = max(0, end-next.Pos)
	}
	return l
}
