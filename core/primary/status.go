package primary

import (
	"sort"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Status is a snapshot of the primary for monitoring.
type Status struct {
	LastTransaction zodb.Tid          // the wrapped storage's last committed tid
	Secondaries     []SecondaryStatus // connected secondaries that completed the handshake, oldest first
	Durability      Durability        // as configured (with defaults filled in)
	Degraded        bool              // sync mode degraded to asynchronous after a timeout (Degraded)
}

// SecondaryStatus describes one connected secondary.
type SecondaryStatus struct {
	Peer           string    // the secondary's network address
	Proto          string    // the protocol it asked for ("zrs2.0", "zrs2.1")
	Start          zodb.Tid  // the tid it said it had when it connected
	LastSent       zodb.Tid  // the last transaction written to it (Start until one is)
	ConnectedSince time.Time // when the connection was accepted

	// Native protocol (zrs3) only; zero for zrs2 secondaries.
	Compression string    // "zstd" or "" (none)
	Acks        bool      // the secondary acknowledges what it applied
	Acked       zodb.Tid  // the last tid it acknowledged (applied and fsynced)
	AckedAt     time.Time // when; zero if it never did
	// Lag behind the primary's last transaction: from Acked when the
	// secondary acknowledges, else from LastSent (what zrs2 can tell).
	Lag Lag
}

// Status returns the current state of the primary and of each secondary.
// LastSent says what was handed to the connection, not what the secondary
// has applied: zrs2 has no acknowledgements.
func (p *Primary) Status() Status {
	st := Status{LastTransaction: p.st.LastTransaction(), Durability: p.opts.Durability, Degraded: p.Degraded()}
	p.mu.Lock()
	for s := range p.streams {
		if ss, ok := s.status(); ok {
			st.Secondaries = append(st.Secondaries, ss)
		}
	}
	p.mu.Unlock()
	for i := range st.Secondaries {
		ss := &st.Secondaries[i]
		at := ss.LastSent
		if ss.Acks {
			at = ss.Acked
		}
		ss.Lag = p.lagOf(at, st.LastTransaction)
	}
	sort.Slice(st.Secondaries, func(i, j int) bool {
		return st.Secondaries[i].ConnectedSince.Before(st.Secondaries[j].ConnectedSince)
	})
	return st
}
