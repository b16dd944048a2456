package zeo

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// opKind is what a recorded data call does at vote.
type opKind uint8

const (
	opStore opKind = iota
	opCheck
	opDelete
	opRestore
	opUndo
)

// op is one data call recorded between tpc_begin and vote.
type op struct {
	kind    opKind
	oid     zodb.Oid
	serial  zodb.Tid // store/check/delete: the serial read; restore: the record's tid
	data    []byte   // store, restore (nil: deletion)
	dataTxn zodb.Tid // restore's prev_txn
	tid     zodb.Tid // undo: the transaction to undo
}

// spilledOpHeader is the size of an op in the spill file before its
// data: kind, a flag for nil data, oid, serial, dataTxn, tid, data length.
const spilledOpHeader = 1 + 1 + 8*5

// txnState is where a session's transaction is in the two-phase commit.
type txnState uint8

const (
	stOpen   txnState = iota // recording data calls
	stVoting                 // vote waiting for the lock or replaying
	stVoted                  // holding the commit lock, storage txn voted
	stDone                   // finished or aborted
)

// transaction is a session's ZEO transaction.
type transaction struct {
	ss    *session
	id    *pyval.Value // the client's txn id, compared by value
	meta  zodb.TxnMeta
	begin zodb.BeginOptions
	ops   []op // the data calls recorded in memory, in order
	bytes int64
	state txnState

	// Past Options.SpillBytes every further data call goes, whole, to an
	// unlinked temporary file, after those in ops: a transaction of
	// millions of small calls costs disk, not memory, until vote.
	spill  *os.File
	spillW *bufio.Writer
	spillN int // calls in the file

	st      zodb.Txn   // the storage transaction while voting/voted
	locked  bool       // holds the server's commit lock
	changed []zodb.Oid // oids to invalidate, known after a successful vote
	undone  []zodb.Oid // oids undoa changed (reported by vote)
	cancel  func()     // stops a vote waiting for the lock
	started time.Time  // when the lock was taken
}

// sameID compares transaction ids (Python id() ints, or anything).
func sameID(a, b *pyval.Value) bool {
	ai, aok := a.AsInt()
	bi, bok := b.AsInt()
	if aok && bok {
		return ai == bi
	}
	return a.String() == b.String()
}

// tpcBegin(id, user, description, extension, tid, status) — one-way.
func (ss *session) tpcBegin(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(4, 6)
	id := a.get(0)
	user, desc := a.bytes(1), a.bytes(2)
	ext := a.dict(3)
	tid := a.optTid(4)
	status := zodb.StatusCommitted
	if v := a.get(5); v != nil && !v.IsNone() {
		s := a.text(5)
		if len(s) != 1 || !zodb.TxnStatus(s[0]).Valid() {
			return nil, txnErrorf("tpc_begin: status %q is not ' ' or 'p'", s)
		}
		status = zodb.TxnStatus(s[0])
	}
	if a.err != nil {
		return nil, a.err
	}
	if err := ss.writable(); err != nil {
		return nil, err
	}
	extBytes, err := pyval.ExtensionBytes(ext)
	if err != nil {
		return nil, fmt.Errorf("tpc_begin: transaction extension: %w", err)
	}
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	if t := ss.txn; t != nil {
		if sameID(t.id, id) {
			return nil, nil // a repeated tpc_begin for the same transaction
		}
		return nil, txnErrorf("tpc_begin for %s while transaction %s is in progress", id, t.id)
	}
	if ss.srv.draining.Load() {
		// Checked under tmu, as Shutdown checks for a transaction. The
		// refusal ends the session (tpc_begin is one-way); end answers a
		// commit still finishing first.
		return nil, errShuttingDown
	}
	ss.txn = &transaction{
		ss:    ss,
		id:    id,
		meta:  zodb.TxnMeta{User: user, Description: desc, Extension: extBytes},
		begin: zodb.BeginOptions{Tid: tid, Status: status},
	}
	ss.srv.stats.active.Add(1)
	return nil, nil
}

// record appends a data call to the transaction named by argument idx.
func (ss *session) record(a *args, idx int, o op) error {
	if a.err != nil {
		return a.err
	}
	if err := ss.writable(); err != nil {
		return err
	}
	id := a.get(idx)
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	t := ss.txn
	if t == nil || !sameID(t.id, id) {
		return txnErrorf("%s for transaction %s, which was not begun on this connection", a.method, id)
	}
	if t.state != stOpen {
		return txnErrorf("%s after vote", a.method)
	}
	t.bytes += int64(len(o.data)) + 64
	if t.bytes > ss.srv.opts.MaxTxnBytes {
		return txnErrorf("transaction larger than the server's limit of %d bytes", ss.srv.opts.MaxTxnBytes)
	}
	if t.spill != nil || t.bytes > ss.srv.opts.SpillBytes {
		if err := t.spillOp(&o); err != nil {
			return fmt.Errorf("%s: %w", a.method, err)
		}
		return nil
	}
	t.ops = append(t.ops, o)
	return nil
}

// spillOp appends a data call to the transaction's spill file, created
// (and unlinked at once: a crash leaves nothing behind) by the first.
func (t *transaction) spillOp(o *op) error {
	if t.spill == nil {
		f, err := os.CreateTemp(t.ss.srv.opts.TempDir, "zrs-zeo-txn-*")
		if err != nil {
			return fmt.Errorf("spilling a large transaction to disk: %w", err)
		}
		os.Remove(f.Name())
		t.spill, t.spillW = f, bufio.NewWriterSize(f, 64<<10)
	}
	var h [spilledOpHeader]byte
	h[0] = byte(o.kind)
	if o.data != nil {
		h[1] = 1
	}
	for i, v := range []uint64{uint64(o.oid), uint64(o.serial), uint64(o.dataTxn), uint64(o.tid), uint64(len(o.data))} {
		binary.BigEndian.PutUint64(h[2+8*i:], v)
	}
	if _, err := t.spillW.Write(h[:]); err != nil {
		return fmt.Errorf("spilling a large transaction to disk: %w", err)
	}
	if _, err := t.spillW.Write(o.data); err != nil {
		return fmt.Errorf("spilling a large transaction to disk: %w", err)
	}
	t.spillN++
	return nil
}

// eachOp calls fn with every recorded data call in order: those in
// memory, then those read back from the spill file. fn must not keep o.
func (t *transaction) eachOp(fn func(o *op) error) error {
	for i := range t.ops {
		if err := fn(&t.ops[i]); err != nil {
			return err
		}
	}
	if t.spill == nil {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("reading back a spilled transaction: %w", err) }
	if err := t.spillW.Flush(); err != nil {
		return fail(err)
	}
	end, err := t.spill.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(t.spill, 0, end), 64<<10)
	var h [spilledOpHeader]byte
	for range t.spillN {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return fail(err)
		}
		u := func(i int) uint64 { return binary.BigEndian.Uint64(h[2+8*i:]) }
		o := op{kind: opKind(h[0]), oid: zodb.Oid(u(0)), serial: zodb.Tid(u(1)), dataTxn: zodb.Tid(u(2)), tid: zodb.Tid(u(3))}
		if h[1] != 0 {
			o.data = make([]byte, u(4))
			if _, err := io.ReadFull(r, o.data); err != nil {
				return fail(err)
			}
		}
		if err := fn(&o); err != nil {
			return err
		}
	}
	return nil
}

// release frees what the transaction holds outside the storage.
func (t *transaction) release() {
	if t.spill != nil {
		t.spill.Close()
		t.spill, t.spillW, t.spillN = nil, nil, 0
	}
	t.ops = nil
}

// storea(oid, serial, data, id) — one-way. A None serial means new.
func (ss *session) storea(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(4, 4)
	o := op{kind: opStore, oid: a.oid(0), serial: a.optTid(1), data: a.data(2)}
	if o.data == nil && a.err == nil {
		return nil, txnErrorf("storea: no data for %s", o.oid)
	}
	ss.srv.stats.stores.Add(1)
	return nil, ss.record(a, 3, o)
}

// restorea(oid, serial, data, prev_txn, id) — one-way.
func (ss *session) restorea(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(5, 5)
	o := op{kind: opRestore, oid: a.oid(0), serial: a.tid(1), data: a.data(2), dataTxn: a.optTid(3)}
	ss.srv.stats.stores.Add(1)
	return nil, ss.record(a, 4, o)
}

// checkCurrentSerialInTransaction(oid, serial, id) — one-way.
func (ss *session) checkCurrentSerial(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(3, 3)
	return nil, ss.record(a, 2, op{kind: opCheck, oid: a.oid(0), serial: a.tid(1)})
}

// deleteObject(oid, serial, id) — one-way.
func (ss *session) deleteObject(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(3, 3)
	ss.srv.stats.stores.Add(1)
	return nil, ss.record(a, 2, op{kind: opDelete, oid: a.oid(0), serial: a.tid(1)})
}

// vote(id) → [undone oids] or [conflict dicts]. It waits for the commit
// lock in its own goroutine so the connection keeps being served. After
// conflicts the lock is kept until the client votes again, finishes or
// aborts.
func (ss *session) vote(a *args, id *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	tid := a.get(0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	t := ss.txn
	if t == nil || !sameID(t.id, tid) {
		ss.tmu.Unlock()
		return nil, txnErrorf("vote for transaction %s, which is not in progress on this connection", tid)
	}
	if t.state != stOpen {
		ss.tmu.Unlock()
		return nil, txnErrorf("vote called twice")
	}
	t.state = stVoting
	held := t.locked // kept from a vote that returned conflicts
	ctx, cancel := context.WithCancel(ss.ctx)
	t.cancel = cancel
	ss.tmu.Unlock()
	go func() {
		defer cancel()
		// A panic voting ends the connection; the commit lock this
		// goroutine may hold is released first (see contain).
		defer ss.contain("voting", t.fail)
		v, wait, err := t.vote(ctx, held)
		// A wait for a conflicting commit's publication runs here, with
		// the session's lock released: the connection's other requests
		// (tpc_abort, iterators) are served meanwhile.
		if wait != nil {
			if werr := wait(); werr != nil && err == nil {
				t.fail()
				v, err = nil, txnErrorf("transaction aborted while waiting for a conflicting commit: %v", werr)
			}
		}
		ss.answer(id, v, err)
	}()
	return nil, errReplied
}

// vote takes the commit lock, replays the recorded calls into a storage
// transaction and votes it. When the answer names a conflicting commit,
// wait (non-nil) returns once that commit is published; the caller runs it
// before answering.
func (t *transaction) vote(ctx context.Context, held bool) (v *pyval.Value, wait func() error, err error) {
	s := t.ss.srv
	if !held {
		if err := s.acquireCommit(ctx, t.ss); err != nil {
			t.fail()
			return nil, nil, txnErrorf("transaction aborted while waiting for the commit lock")
		}
	}
	t.ss.tmu.Lock()
	defer t.ss.tmu.Unlock()
	if t.state != stVoting {
		// Aborted while waiting. The lock is ours to release if this
		// call took it, or if it was kept from an earlier vote and the
		// abort (failLocked) has not released it already.
		t.release()
		if !held || t.locked {
			s.releaseCommit()
		}
		t.locked = false
		return nil, nil, txnErrorf("transaction aborted")
	}
	t.locked = true
	t.started = time.Now()
	st, err := s.st.Begin(ctx, t.meta, t.begin)
	if err != nil {
		t.failLocked()
		return nil, nil, err
	}
	t.st = st
	conflicts, newest, err := t.replay(ctx)
	if err != nil {
		return nil, t.failVote(ctx, err), err
	}
	if len(conflicts) > 0 {
		// Client-side conflict resolution: give the conflicts back and
		// keep the ZEO transaction open for the re-stores and the next
		// vote. The commit lock stays held meanwhile, so nothing can
		// commit over the states the client resolves against and the
		// next vote succeeds. (Python's server releases it here; under
		// contention a client then loses round after round until it
		// gives up after nine — the same cost as resolving on the server
		// under the lock, which is what Python does by default.)
		t.st.Abort()
		t.st = nil
		t.state = stOpen
		s.stats.conflicts.Add(int64(len(conflicts)))
		// The client resolves by loading the committed revisions: they
		// must be published first. A transaction that finished writing
		// but still waits for its fsync (see tpcFinish) is published
		// within that fsync.
		turn := s.pubTurn
		return pyval.List(conflicts...), func() error {
			// The client keeps the commit lock for its resolution; the
			// time spent waiting here is the server's, not the client's.
			defer s.pauseLockTimer()()
			return s.waitPublished(ctx, newest, turn)
		}, nil
	}
	if err := t.st.Vote(ctx); err != nil {
		var ce *zodb.ConflictError
		if errors.As(err, &ce) {
			err = readConflict{ce}
		}
		return nil, t.failVote(ctx, err), err
	}
	t.state = stVoted
	return oidList(t.undone), nil, nil
}

// replay applies the recorded calls to the storage transaction. Store
// conflicts are collected, keyed by oid: a later store of the same oid
// (the client's resolution) replaces the conflict.
//
// newest is the greatest committed serial among the conflicts.
func (t *transaction) replay(ctx context.Context) (out []*pyval.Value, newest zodb.Tid, err error) {
	type conflict struct {
		ce   *zodb.ConflictError
		data []byte
	}
	var order []zodb.Oid
	conflicts := make(map[zodb.Oid]*conflict)
	seen := make(map[zodb.Oid]bool)
	t.changed = t.changed[:0]
	t.undone = t.undone[:0]
	note := func(oid zodb.Oid) {
		if !seen[oid] {
			seen[oid] = true
			t.changed = append(t.changed, oid)
		}
	}
	err = t.eachOp(func(o *op) error {
		if err := ctx.Err(); err != nil {
			// The client went away (or the server is closing): a large
			// transaction stops replaying at once instead of holding the
			// session's clean-up, and the commit lock, until it ends.
			return err
		}
		data := o.data
		var err error
		switch o.kind {
		case opStore:
			err = t.st.Store(o.oid, o.serial, data)
			var ce *zodb.ConflictError
			if errors.As(err, &ce) {
				if conflicts[o.oid] == nil {
					order = append(order, o.oid)
				}
				conflicts[o.oid] = &conflict{ce: ce, data: data}
				return nil
			}
			if err == nil {
				if conflicts[o.oid] != nil {
					delete(conflicts, o.oid)
					t.ss.srv.stats.resolved.Add(1)
				}
				note(o.oid)
			}
		case opCheck:
			err = t.st.CheckCurrentSerial(o.oid, o.serial)
			var ce *zodb.ConflictError
			if errors.As(err, &ce) {
				err = readConflict{ce}
			}
		case opDelete:
			err = t.st.Delete(o.oid, o.serial)
			note(o.oid)
		case opRestore:
			err = t.st.Restore(o.oid, o.serial, data, o.dataTxn)
			note(o.oid)
		case opUndo:
			var oids []zodb.Oid
			oids, err = t.st.Undo(ctx, o.tid)
			for _, oid := range oids {
				note(oid)
				t.undone = append(t.undone, oid)
			}
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	for _, oid := range order {
		c := conflicts[oid]
		if c == nil {
			continue
		}
		newest = max(newest, c.ce.Committed)
		out = append(out, pyval.Dict(
			pyval.Str("oid"), oidValue(oid),
			pyval.Str("serials"), pyval.Tuple(tidValue(c.ce.Committed), tidValue(c.ce.Old)),
			pyval.Str("data"), pyval.Bytes(c.data),
		))
	}
	return out, newest, nil
}

// failVote ends the transaction after its vote failed with the commit
// lock held. A conflict with a transaction in the storage but not yet
// published (tpc_finish hands the lock on before the storage's fsync) is
// answered once that transaction is published, as vote's conflict lists
// are: the client then has its invalidation before it retries, instead of
// retrying on the same stale state, and failing again, while the fsync
// lasts. The lock is released first: the wait holds up no other commit.
// It returns that wait, for the caller to run without the session's lock,
// or nil.
func (t *transaction) failVote(ctx context.Context, err error) func() error {
	s := t.ss.srv
	turn := s.pubTurn // read under the commit lock, which failLocked releases
	t.failLocked()
	var ce *zodb.ConflictError
	if !errors.As(err, &ce) {
		return nil
	}
	return func() error {
		_ = s.waitPublished(ctx, ce.Committed, turn)
		return nil // the vote failed anyway: answer its error
	}
}

// fail ends the transaction after a failed vote (lock not held).
func (t *transaction) fail() {
	t.ss.tmu.Lock()
	defer t.ss.tmu.Unlock()
	t.failLocked()
}

// failLocked aborts the storage transaction, releases the lock and ends
// the ZEO transaction; the caller holds tmu.
func (t *transaction) failLocked() {
	if t.st != nil {
		t.st.Abort()
		t.st = nil
	}
	if t.locked {
		t.locked = false
		t.ss.srv.releaseCommit()
	}
	t.release()
	t.endAborted()
}

// endAborted marks the ZEO transaction aborted and detaches it from its
// session; the caller holds tmu.
func (t *transaction) endAborted() {
	if t.state != stDone {
		t.state = stDone
		t.ss.srv.stats.aborts.Add(1)
		t.ss.srv.endActive(t.ss)
	}
	if t.ss.txn == t {
		t.ss.txn = nil
	}
}

// abort is tpc_abort or a disconnect.
func (t *transaction) abort() {
	t.ss.tmu.Lock()
	defer t.ss.tmu.Unlock()
	if t.state == stVoting {
		// The vote goroutine owns the lock and the cleanup: stop its
		// wait, mark the transaction, and let it see.
		if t.cancel != nil {
			t.cancel()
		}
		t.endAborted()
		return
	}
	t.failLocked()
}

// tpcFinish(id) → tid. The commit is published (invalidations queued for
// every other client) before the reply, atomically with respect to loads.
// A storage whose Finish then waits for more (zodb.SplitFinisher: a
// primary's sync durability waiting for its secondaries) is waited for in
// a goroutine of its own, as a vote waits for the commit lock: the
// client's other requests — the loads of an application's other threads
// sharing its connection — are served meanwhile. The commit is published
// after that wait, in commit order, as when Finish waits.
func (ss *session) tpcFinish(a *args, id *pyval.Value) (*pyval.Value, error) {
	a.count(1, 2)
	tid := a.get(0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	t := ss.txn
	if t == nil || !sameID(t.id, tid) {
		ss.tmu.Unlock()
		return pyval.None(), nil
	}
	if t.state != stVoted {
		ss.tmu.Unlock()
		return nil, txnErrorf("tpc_finish before a successful vote")
	}
	s := ss.srv
	st := t.st
	// Group commit: the commit lock goes to the next transaction before
	// this one's fsync. The storage keeps its own lock until this
	// transaction is written, so the next one writes behind it and is
	// checked against it; both may then share one fsync. Publication stays
	// in commit order: each finisher publishes after the one before it.
	prev, mine := s.pubTurn, make(chan struct{})
	s.pubTurn = mine
	t.locked = false
	s.releaseCommit()
	var committed zodb.Tid
	var wait func(context.Context) error
	var err error
	if sf, ok := st.(zodb.SplitFinisher); ok {
		committed, wait, err = sf.FinishDurable(ss.ctx)
	} else {
		committed, err = st.Finish(ss.ctx)
	}
	if committed == 0 {
		st.Abort()
	}
	t.st = nil
	t.state = stDone
	t.release()
	ss.txn = nil
	changed := t.changed
	if committed == 0 {
		s.endActive(ss)
		ss.tmu.Unlock()
		<-prev
		close(mine)
		s.stats.aborts.Add(1)
		return nil, fmt.Errorf("tpc_finish: %w", err)
	}
	ss.finishing++
	ss.tmu.Unlock()
	// The transaction is in the storage from here, even if the wait says
	// it was not confirmed (sync replication timed out): it is published
	// to everyone, after the wait. The wait does not end with the client's
	// connection — a commit is published once replicated or timed out,
	// whoever waits for the answer — only with the server.
	publish := func() {
		// The transaction ends when it is answered (or when answering
		// panicked): a server draining for shutdown closes the connection
		// only after that, and so does the session's end.
		defer func() {
			ss.tmu.Lock()
			ss.finishing--
			if ss.finishing == 0 {
				ss.finished.Broadcast()
			}
			s.endActive(ss)
			ss.tmu.Unlock()
		}()
		defer close(mine)
		if wait != nil {
			err = wait(s.life)
		}
		<-prev
		// A panic until it is published would leave the other clients'
		// caches stale for good: contain treats it as fatal.
		ss.unpublished.Store(uint64(committed))
		s.stats.commits.Add(1)
		info := pyval.Dict(pyval.Str("length"), pyval.Int(int64(s.st.Len())), pyval.Str("size"), pyval.Int(s.size()))
		s.publish(committed, changed, ss, func() {
			ss.send(oneWay("info", info))
			ss.answer(id, tidValue(committed), err)
		})
		ss.unpublished.Store(0)
	}
	if wait == nil {
		publish()
		return nil, errReplied
	}
	s.wg.Add(1) // the session's goroutine holds one: Close waits for this too
	go func() {
		defer s.wg.Done()
		published := false
		defer ss.contain("finishing", nil)
		defer func() {
			// A panic before the publication (in the wait): the commit
			// will never be published, which contain must know.
			if !published {
				ss.unpublished.Store(uint64(committed))
			}
		}()
		publish()
		published = true
	}()
	return nil, errReplied
}

// tpcAbort(id) → None; unknown ids are ignored.
func (ss *session) tpcAbort(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	tid := a.get(0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	t := ss.txn
	ss.tmu.Unlock()
	if t != nil && sameID(t.id, tid) {
		t.abort()
	}
	return pyval.None(), nil
}
