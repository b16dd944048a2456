package secondary

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// ErrPromoted is returned by Run on a promoted secondary.
var ErrPromoted = errors.New("promoted to primary; no longer replicating")

// PromoteOidGap is how far past its greatest oid a promoted secondary
// starts handing out new oids (2^24). The old primary's ZEO clients keep
// the new oids they fetched and did not use, and reconnect to the new
// primary with them; the old primary handed them out past the greatest oid
// replicated here by the objects the secondary had not received and the
// oids its clients fetched, used or wasted: far fewer than this.
const PromoteOidGap = 1 << 24

// errPromotionUnfinished is the status's last error after a Promote whose
// context ended before replication stopped.
var errPromotionUnfinished = errors.New("a promotion did not finish in time: replication has stopped for good " +
	"and the storage is still read-only; promote again to finish it")

// Promote turns the secondary into a primary without a restart: it stops
// replicating (Run's loop is cancelled and the connection closed; a
// transaction not yet received whole is dropped, and those received whole
// — checksum verified — are written and finished),
// waits for Run to return, and then opens the storage to writes: Begin and
// NewOid go to the wrapped storage and ReadOnly is false. If the wrapped
// storage is a primary.Primary (a relay), its own secondaries keep their
// streams and receive the new commits like the replicated ones before.
//
// Promote takes as long as the replication loop needs to notice the
// cancellation (it closes the connection, so a blocked read ends at once)
// plus the fsyncs of the transactions already finishing (a FileStorage's
// group commit covers them with one or two); a relay whose own secondaries
// must acknowledge (sync durability) waits for them too, up to its sync
// timeout. It is
// idempotent; it fails with zodb.ErrClosed after Close, and with ctx's
// error if ctx ends before Run stopped (the secondary then stays
// read-only, no longer replicating, and its status's last error says so;
// call Promote again to finish).
func (s *Secondary) Promote(ctx context.Context) error {
	s.obs.promoteMu.Lock()
	defer s.obs.promoteMu.Unlock()
	if s.obs.promoted.Load() {
		return nil
	}
	start := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("secondary: promote: %w", zodb.ErrClosed)
	}
	s.obs.promoting.Store(true)
	cancel, done := s.cancelRun, s.runDone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			// Replication will not resume (Run stops for good), and the
			// storage stays read-only until a Promote finishes: say so
			// where the status is read, which would otherwise look like
			// a secondary between two connection attempts.
			s.setErr(errPromotionUnfinished)
			s.obs.unfinished.Store(true)
			s.log.Error("promotion did not finish: replication is stopping and the storage stays read-only; promote again", logKeyErr, ctx.Err())
			return fmt.Errorf("secondary: promote: waiting for replication to stop: %w", ctx.Err())
		}
	}
	// New oids start far past the replicated ones, before any is handed
	// out: the old primary's clients hold oids it reserved. A storage that
	// cannot record it still gets promoted (the record is a hint).
	if sk, ok := s.st.(zodb.OidReserver); ok {
		if err := sk.SkipOids(PromoteOidGap); err != nil {
			s.log.Warn("promoting: cannot move new oids past the old primary's; its ZEO clients may meet conflicts on new objects", logKeyErr, err)
		}
	}
	s.obs.promotedAt = time.Now()
	s.setErr(nil) // a promotion that timed out before is finished now
	s.obs.unfinished.Store(false)
	s.obs.promoted.Store(true)
	s.log.Warn("promoted to primary: replication stopped, storage writable",
		logKeyTid, s.st.LastTransaction(), "took", time.Since(start))
	if s.opts.OnPromote != nil {
		s.opts.OnPromote()
	}
	return nil
}

// Promoted reports whether Promote has finished: the storage is writable
// and nothing is replicated any more.
func (s *Secondary) Promoted() bool { return s.obs.promoted.Load() }

// PromotedAt returns when Promote finished (zero if it has not).
func (s *Secondary) PromotedAt() time.Time {
	if !s.Promoted() {
		return time.Time{}
	}
	s.obs.promoteMu.Lock()
	defer s.obs.promoteMu.Unlock()
	return s.obs.promotedAt
}
