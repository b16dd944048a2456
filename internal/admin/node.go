package admin

import (
	"context"
	"errors"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
)

// ErrNotSecondary: promotion asked of a node that is not a secondary.
var ErrNotSecondary = errors.New("not a secondary")

// Node is what the endpoint serves: a daemon's primary or secondary.
type Node interface {
	Status() Status
	// Promote turns a secondary into a primary; other nodes fail with
	// an error wrapping ErrNotSecondary.
	Promote(ctx context.Context) error
}

// SyncReporter is a storage that tells how long its commit fsync under
// way has been running (fs.FileStorage).
type SyncReporter interface {
	SyncRunning() time.Duration
}

// syncRunning is r's SyncRunning in seconds, 0 without r.
func syncRunning(r SyncReporter) float64 {
	if r == nil {
		return 0
	}
	return r.SyncRunning().Seconds()
}

// PrimaryNode is a daemon running a primary on the database at Path;
// Storage, if set, is the file behind it.
type PrimaryNode struct {
	Primary *primary.Primary
	Path    string
	Storage SyncReporter
}

// Status reports the primary and its secondaries.
func (n *PrimaryNode) Status() Status {
	ps := n.Primary.Status()
	return Status{
		Role: RolePrimary, Path: n.Path,
		LastTid: ps.LastTransaction.Hex(), LastTidTime: tidTime(ps.LastTransaction),
		Serving: true, Secondaries: downstreams(ps),
		Durability: ps.Durability.String(), SyncDegraded: ps.Degraded,
		FsyncRunning: syncRunning(n.Storage),
	}
}

// Promote fails: the node is already a primary.
func (n *PrimaryNode) Promote(ctx context.Context) error {
	return ErrNotSecondary
}

// SecondaryNode is a daemon running a secondary on the database at
// Path; Relay is the primary serving further secondaries (nil if none);
// Storage, if set, is the file behind them.
type SecondaryNode struct {
	Secondary *secondary.Secondary
	Relay     *primary.Primary
	Path      string
	Storage   SyncReporter
}

// Status reports the secondary (role "primary" once promoted), its
// primary, and a relay's secondaries.
func (n *SecondaryNode) Status() Status {
	s := n.Secondary
	last := s.LastTransaction()
	st := Status{Role: RoleSecondary, Path: n.Path, LastTid: last.Hex(), LastTidTime: tidTime(last), FsyncRunning: syncRunning(n.Storage)}
	if s.Promoted() {
		st.Role, st.PromotedAt = RolePrimary, s.PromotedAt().UTC()
	} else {
		ss := s.Status()
		up := &Upstream{Address: ss.Primary, Connected: ss.Connected, LastError: ss.LastError, Promoting: ss.Promoting}
		if ss.Connected {
			up.ConnectedSince = ss.ConnectedSince.UTC()
		}
		if since, ok := s.Waiting(); ok && ss.Connected {
			up.CaughtUp, up.WaitingSince = true, since.UTC()
		}
		st.Upstream = up
	}
	if n.Relay != nil {
		st.Serving, st.Secondaries = true, downstreams(n.Relay.Status())
	}
	return st
}

// Promote promotes the secondary.
func (n *SecondaryNode) Promote(ctx context.Context) error {
	return n.Secondary.Promote(ctx)
}
