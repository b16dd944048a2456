package admin

import (
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Roles a node reports.
const (
	RolePrimary   = "primary"
	RoleSecondary = "secondary"
)

// Status is what GET /status returns.
type Status struct {
	Role        string       `json:"role"`                   // RolePrimary or RoleSecondary
	Path        string       `json:"path"`                   // the Data.fs served
	LastTid     string       `json:"last_tid"`               // hex; 0000000000000000 for an empty database
	LastTidTime time.Time    `json:"last_tid_time,omitzero"` // the time encoded in LastTid
	PromotedAt  time.Time    `json:"promoted_at,omitzero"`   // when a former secondary was promoted
	Upstream    *Upstream    `json:"upstream,omitempty"`     // a secondary's primary
	Serving     bool         `json:"serving"`                // it serves secondaries (a primary, or a relay)
	Secondaries []Downstream `json:"secondaries,omitzero"`   // connected secondaries, oldest first; [] on a node that serves none yet
	// Durability is a primary's replication guarantee: "async", or e.g.
	// "sync ANY 1, timeout 5s, degrade"; SyncDegraded is true while such
	// a sync primary replicates asynchronously after a timeout.
	Durability   string `json:"durability,omitempty"`
	SyncDegraded bool   `json:"sync_degraded,omitempty"`
	// FsyncRunning is how long the storage's commit fsync under way has
	// been running, in seconds; absent when none is. Commits wait for it:
	// seconds mean a disk that does not answer (StalledAfter).
	FsyncRunning float64 `json:"fsync_running_seconds,omitempty"`
}

// StalledAfter is how long a commit fsync may run before status reports
// (zrs status, the systemd STATUS) call the storage stalled.
const StalledAfter = 5 * time.Second

// Stalled reports whether the storage's commit fsync has been running for
// StalledAfter or longer, and for how long.
func (s Status) Stalled() (time.Duration, bool) {
	d := time.Duration(s.FsyncRunning * float64(time.Second))
	return d, d >= StalledAfter
}

// Upstream is a secondary's view of its primary.
type Upstream struct {
	Address        string    `json:"address"`
	Connected      bool      `json:"connected"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// CaughtUp: connected, and everything the primary sent is applied
	// (the secondary is waiting for the next transaction).
	CaughtUp     bool      `json:"caught_up"`
	WaitingSince time.Time `json:"waiting_since,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	// Promoting: a promotion has stopped replication and has not finished
	// (it timed out): the node no longer replicates and is still
	// read-only until "zrs promote" is run again.
	Promoting bool `json:"promoting,omitempty"`
}

// Downstream is one secondary connected to a primary.
type Downstream struct {
	Peer           string    `json:"peer"`
	Proto          string    `json:"proto"`
	ConnectedSince time.Time `json:"connected_since"`
	// LastSent is the last transaction handed to the connection.
	LastSent     string    `json:"last_sent"`
	LastSentTime time.Time `json:"last_sent_time,omitzero"`
	// Acked is the last transaction a zrs3 secondary acknowledged
	// (applied and fsynced); zrs2 secondaries do not acknowledge.
	Acked string `json:"acked,omitempty"`
	// CaughtUp: the secondary's position — Acked for a zrs3 secondary,
	// else LastSent — is the primary's last tid.
	CaughtUp bool `json:"caught_up"`
	// LagSeconds is the time between the position's tid and the
	// primary's last tid (0 when caught up; from the primary's first
	// transaction when the secondary has nothing yet).
	LagSeconds float64 `json:"lag_seconds"`
	// LagTransactions and LagBytes are set when the primary can tell.
	LagTransactions *int64 `json:"lag_transactions,omitempty"`
	LagBytes        *int64 `json:"lag_bytes,omitempty"`
}

// tidTime is the time in tid, zero for tid 0.
func tidTime(tid zodb.Tid) time.Time {
	if tid == 0 {
		return time.Time{}
	}
	return tid.Time().UTC()
}

// downstreams converts a primary's view of its secondaries.
func downstreams(st primary.Status) []Downstream {
	out := []Downstream{} // "secondaries": [] in the JSON, not absent
	for _, ss := range st.Secondaries {
		pos := ss.LastSent
		d := Downstream{
			Peer: ss.Peer, Proto: ss.Proto, ConnectedSince: ss.ConnectedSince.UTC(),
			LastSent: ss.LastSent.Hex(), LastSentTime: tidTime(ss.LastSent),
		}
		if ss.Acks {
			pos = ss.Acked
			d.Acked = ss.Acked.Hex()
		}
		// The primary computed the lag from the same position.
		d.CaughtUp = pos >= st.LastTransaction
		if !d.CaughtUp {
			d.LagSeconds = ss.Lag.Seconds
		}
		if n := ss.Lag.Transactions; n >= 0 {
			d.LagTransactions = &n
		}
		if n := ss.Lag.Bytes; n >= 0 {
			d.LagBytes = &n
		}
		out = append(out, d)
	}
	return out
}
