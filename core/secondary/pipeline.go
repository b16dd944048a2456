package secondary

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// maxFinishing bounds the replicated transactions written and waiting for
// their fsync at once. Each holds only its tid and oids (its data is in
// the file once voted); the bound keeps a disk slower than the network
// from piling up goroutines.
const maxFinishing = 64

// applier overlaps a connection's transactions with their fsyncs. The
// connection's goroutine writes each transaction (Begin, Restore of every
// record, Vote) and hands it to finish, which calls Finish on a goroutine
// of its own: Finish writes the status byte, lets the next transaction
// begin and waits for an fsync. So the next transaction is received and
// written while earlier ones wait, and one fsync covers every transaction
// finished while the previous fsync ran (the storage's group commit),
// instead of one fsync per transaction in turn.
//
// What follows a transaction's durability — the apply observer,
// Options.OnCommit, the commit watcher (a replica's ZEO invalidations) and
// done (a zrs3 acknowledgement) — runs once Finish has returned, one
// transaction at a time, in tid order, for every transaction committed.
// A failed Finish that did not commit stops the connection at once — it
// cancels the connection's context, which closes it, so a reader waiting
// for a primary with nothing more to send does not keep the connection
// (and a "connected" status) until the next commit; one that committed
// all the same (a relay) is reported and acknowledged first. Either way
// apply and wait return the failure; the storage must then not commit a
// later transaction without it, which holds for a FileStorage (a failed write or fsync closes it)
// and for a relay (its Finish fails as its FileStorage's does, or after
// committing locally).
type applier struct {
	s     *Secondary
	ctx   context.Context
	stop  context.CancelCauseFunc // ends the connection
	done  func(tid zodb.Tid)      // last of the hooks; may be nil
	slots chan struct{}           // one per transaction waiting for its fsync
	prev  chan struct{}           // closed once the last transaction handed on is reported
	wg    sync.WaitGroup

	mu      sync.Mutex
	err     error // the first failed Finish; guarded by mu
	pending int   // transactions handed on and not yet reported; guarded by mu
	all     bool  // see setReceivedAll; guarded by mu
}

// A transaction received whole is applied whole even when the cycle's ctx
// is cancelled meanwhile (a promotion, a Close): what Promote promises,
// and bounded work — the storage's commit lock is only ever waited for
// behind this applier's own earlier transactions, and Finish for an
// fsync.
// stop ends the connection (its context's cancel, whose cause the reader
// may see).
func (s *Secondary) newApplier(ctx context.Context, stop context.CancelCauseFunc, done func(tid zodb.Tid)) *applier {
	prev := make(chan struct{})
	close(prev)
	return &applier{s: s, ctx: context.WithoutCancel(ctx), stop: stop, done: done, slots: make(chan struct{}, maxFinishing), prev: prev}
}

// apply writes one replicated transaction with the primary's tid and
// status, restoring each record with its data_txn hint (so undo and copy
// records become backpointers again), and hands it to finish. A
// transaction that fails before that is aborted: nothing of it is
// visible. It returns the first failure of an earlier Finish, if any, so
// that the connection stops. Durability: the transaction is fsynced
// locally once its hooks run, not when apply returns.
func (a *applier) apply(info *zodb.TxnInfo) (err error) {
	if err := a.failed(); err != nil {
		return err
	}
	start := time.Now()
	txn, err := a.s.st.Begin(a.ctx, info.TxnMeta, zodb.BeginOptions{Tid: info.Tid, Status: info.Status})
	if err != nil {
		return fmt.Errorf("applying transaction %s: begin: %w", info.Tid, err)
	}
	defer func() {
		if err != nil {
			txn.Abort()
		}
	}()
	oids := make([]zodb.Oid, 0, len(info.Records))
	for i := range info.Records {
		r := &info.Records[i]
		if err := txn.Restore(r.Oid, r.Tid, r.Data, r.DataTxn); err != nil {
			return fmt.Errorf("applying transaction %s: restore of object %s: %w", info.Tid, r.Oid, err)
		}
		oids = append(oids, r.Oid)
	}
	if err := txn.Vote(a.ctx); err != nil {
		return fmt.Errorf("applying transaction %s: vote: %w", info.Tid, err)
	}
	a.finish(txn, info.Tid, oids, start)
	return nil
}

// finish finishes txn on a goroutine of its own and reports it after
// every transaction handed on before it.
func (a *applier) finish(txn zodb.Txn, tid zodb.Tid, oids []zodb.Oid, start time.Time) {
	a.slots <- struct{}{}
	prev, mine := a.prev, make(chan struct{})
	a.prev = mine
	a.mu.Lock()
	a.pending++
	a.mu.Unlock()
	a.wg.Go(func() {
		defer func() { <-a.slots }()
		defer close(mine)
		defer a.reported()
		_, err := txn.Finish(a.ctx)
		<-prev
		if err != nil {
			txn.Abort()
			ferr := fmt.Errorf("applying transaction %s: finish: %w", tid, err)
			if a.s.st.LastTransaction() < tid {
				// Not committed (the storage closed itself): nothing to
				// report, and the connection ends now.
				a.fail(ferr, true)
				return
			}
			// Committed all the same (a relay whose wait for its own
			// secondaries failed): loads see it, so its invalidations
			// must go out, and its acknowledgement too — the
			// connection stays until the next apply returns the
			// failure, or the acknowledgement would be cut off.
			a.fail(ferr, false)
		}
		a.s.reportApplied(tid, oids, start)
		if a.done != nil {
			a.done(tid)
		}
	})
}

// setReceivedAll tells the applier whether the connection has received
// all the primary has committed so far: with zrs2, it waits for the
// primary with nothing buffered (zrs2 has no heartbeats to say more);
// with zrs3, a heartbeat named no later tid than the last received. The
// secondary is idle (Waiting, caught up) while it has and no transaction
// waits for its fsync.
func (a *applier) setReceivedAll(all bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = all
	a.s.obs.setIdle(all && a.pending == 0)
}

// reported ends a transaction handed on; the last one pending while the
// connection waits makes the secondary idle.
func (a *applier) reported() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if a.pending == 0 && a.all {
		a.s.obs.setIdle(true)
	}
}

// fail records the first failed Finish and, with stop, ends the
// connection at once.
func (a *applier) fail(err error, stop bool) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	if stop {
		a.stop(err)
	}
}

func (a *applier) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// wait returns once every transaction handed on is finished and
// reported, with the first failure, else err. The connection is ending:
// the secondary is no longer idle, however those finishes end (the last
// one must not make it idle while disconnected).
func (a *applier) wait(err error) error {
	a.setReceivedAll(false)
	a.wg.Wait()
	if ferr := a.failed(); ferr != nil {
		return ferr
	}
	return err
}

// reportApplied runs the hooks of a replicated transaction that is
// committed locally.
func (s *Secondary) reportApplied(tid zodb.Tid, oids []zodb.Oid, start time.Time) {
	if fn := s.obs.apply.Load(); fn != nil {
		(*fn)(tid, time.Since(start))
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(tid, oids)
	}
	if fn := s.obs.commits.Load(); fn != nil {
		(*fn)(tid, oids)
	}
}
