package zeo

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

var errEOF = io.EOF

// maxIterators bounds the iterators one session may keep open.
const maxIterators = 1024

// txnIter is an iterator_start iterator and the transaction it last
// returned (whose records iterator_record_start walks).
type txnIter struct {
	it   zodb.TxnIterator
	last *zodb.TxnInfo
	// err, once a transaction could not be sent, is the answer to every
	// later iterator_next: going on would skip that transaction silently.
	err error
}

// recIter walks the records of one transaction.
type recIter struct {
	recs []zodb.DataRecord
}

// unknownIterator is the KeyError Python's server raises for an iterator
// id it does not have (exhausted, collected, or never given).
func unknownIterator(id int64) error {
	return &clientError{qualname: excKeyError, args: []*pyval.Value{pyval.Int(id)}}
}

func (ss *session) newIterID() (int64, error) {
	if len(ss.iters)+len(ss.recIters) >= maxIterators {
		return 0, valueError("too many open iterators on this connection; call iterator_gc")
	}
	ss.nextIter++
	return ss.nextIter, nil
}

// iteratorStart(start, stop) → iterator id.
func (ss *session) iteratorStart(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(0, 2)
	start, stop := a.optTid(0), a.optTid(1)
	if a.err != nil {
		return nil, a.err
	}
	if stop == 0 {
		stop = zodb.MaxTid
	}
	// Transactions not yet published are left out (see tpcFinish).
	stop = min(stop, ss.srv.publishedTid())
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	id, err := ss.newIterID()
	if err != nil {
		return nil, err
	}
	it, err := ss.srv.st.Iterate(ss.ctx, start, stop)
	if err != nil {
		return nil, err
	}
	if ss.iters == nil {
		ss.iters = make(map[int64]*txnIter)
	}
	ss.iters[id] = &txnIter{it: it}
	return pyval.Int(id), nil
}

// iteratorNext(id) → (tid, status, user, description, extension) or None.
func (ss *session) iteratorNext(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	id := a.int(0, 0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	ti := ss.iters[id]
	if ti == nil {
		return nil, unknownIterator(id)
	}
	if ti.err != nil {
		return nil, ti.err
	}
	t, err := ti.it.Next(ss.ctx)
	if errors.Is(err, errEOF) {
		ti.it.Close()
		delete(ss.iters, id)
		return pyval.None(), nil
	}
	if err != nil {
		return nil, err
	}
	ti.last = t
	ext, err := extensionValue(t.Extension)
	if err == nil && !ext.Plain() {
		// ZEO clients refuse to unpickle anything but plain data: sent,
		// this reply would break the client's connection (as it does
		// with ZEO's own server). An error names the transaction instead.
		err = fmt.Errorf("its extension holds objects, which ZEO clients cannot unpickle: %v", ext)
	}
	if err != nil {
		ti.err = fmt.Errorf("transaction %s: %w", t.Tid, err)
		return nil, ti.err
	}
	return pyval.Tuple(tidValue(t.Tid), pyval.Str(string(rune(t.Status))),
		pyval.Bytes(t.User), pyval.Bytes(t.Description), ext), nil
}

// iteratorRecordStart(txn_id, tid) → record iterator id, over the
// records of the transaction the iterator last returned.
func (ss *session) iteratorRecordStart(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(2, 2)
	tiid, tid := a.int(0, 0), a.tid(1)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	ti := ss.iters[tiid]
	if ti == nil {
		return nil, unknownIterator(tiid)
	}
	if ti.last == nil || ti.last.Tid != tid {
		return nil, valueError("iterator_record_start: the transaction iterator is not at that transaction")
	}
	id, err := ss.newIterID()
	if err != nil {
		return nil, err
	}
	if ss.recIters == nil {
		ss.recIters = make(map[int64]*recIter)
	}
	ss.recIters[id] = &recIter{recs: ti.last.Records}
	return pyval.Int(id), nil
}

// iteratorRecordNext(id) → (oid, tid, data|None, data_txn|None) or None.
func (ss *session) iteratorRecordNext(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	id := a.int(0, 0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	ri := ss.recIters[id]
	if ri == nil {
		return nil, unknownIterator(id)
	}
	if len(ri.recs) == 0 {
		delete(ss.recIters, id)
		return pyval.None(), nil
	}
	r := ri.recs[0]
	ri.recs = ri.recs[1:]
	return pyval.Tuple(oidValue(r.Oid), tidValue(r.Tid), bytesOrNone(r.Data), tidOrNone(r.DataTxn)), nil
}

// iteratorGC([ids]) — one-way; unknown ids are ignored.
func (ss *session) iteratorGC(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	ids := a.list(0)
	if a.err != nil {
		return nil, a.err
	}
	ss.tmu.Lock()
	defer ss.tmu.Unlock()
	for _, v := range ids {
		id, ok := v.AsInt()
		if !ok {
			continue
		}
		if ti := ss.iters[id]; ti != nil {
			ti.it.Close()
			delete(ss.iters, id)
		}
		delete(ss.recIters, id)
	}
	return nil, nil
}

// closeIters releases a session's iterators; the caller holds tmu.
func (ss *session) closeIters() {
	for id, ti := range ss.iters {
		ti.it.Close()
		delete(ss.iters, id)
	}
	ss.recIters = nil
}

// recordIternext(next) → (oid, tid, data, next_oid|None): the current
// records in oid order (IStorageCurrentRecordIteration). Deleted objects
// are skipped, next_oid included: it is the next live object, None after
// the last. Runs under pub.
func (ss *session) recordIternext(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(0, 1)
	var next zodb.Oid
	fresh := a.isNone(0)
	if !fresh {
		next = a.oid(0)
	}
	if a.err != nil {
		return nil, a.err
	}
	lister, ok := ss.srv.st.(Oidser)
	if !ok {
		return nil, &clientError{qualname: excNotImplemented, args: []*pyval.Value{pyval.Str("this storage cannot list its objects")}}
	}
	// No tmu here: this runs under pub, and a vote holds tmu while it
	// waits for a publication (see waitPublished). ss.oids is the reader
	// goroutine's own.
	if fresh || ss.oids == nil {
		ss.oids = lister.Oids()
	}
	oids := ss.oids
	i := sort.Search(len(oids), func(i int) bool { return oids[i] >= next })
	limit := ss.srv.lastPublished() + 1
	// live returns the first live object from oids[i] on.
	live := func(i int) (int, []byte, zodb.Tid, error) {
		for ; i < len(oids); i++ {
			data, serial, _, err := ss.srv.st.LoadBefore(ss.ctx, oids[i], limit)
			if errors.Is(err, zodb.ErrNotFound) || errors.Is(err, zodb.ErrNoRevision) || (err == nil && data == nil) {
				continue
			}
			return i, data, serial, err
		}
		return i, nil, 0, nil
	}
	// The object this call returns was loaded by the previous call, to
	// tell the client the next oid, unless a commit came in between.
	ahead := ss.recAhead
	ss.recAhead = recordAhead{}
	var data []byte
	var serial zodb.Tid
	if !fresh && ahead.data != nil && ahead.limit == limit && i < len(oids) && oids[i] == ahead.oid {
		data, serial = ahead.data, ahead.serial
	} else {
		var err error
		if i, data, serial, err = live(i); err != nil {
			return nil, err
		}
	}
	if i == len(oids) {
		return nil, &zodb.NotFoundError{Oid: next}
	}
	j, nextData, nextSerial, err := live(i + 1)
	if err != nil {
		return nil, err
	}
	nextOid := pyval.None()
	if j < len(oids) {
		nextOid = oidValue(oids[j])
		if len(nextData) <= maxRecordAhead {
			ss.recAhead = recordAhead{oid: oids[j], limit: limit, data: nextData, serial: nextSerial}
		}
	}
	return pyval.Tuple(oidValue(oids[i]), tidValue(serial), pyval.Bytes(data), nextOid), nil
}

// maxRecordAhead bounds the record a session keeps for its next
// record_iternext: a client that stops iterating keeps it until it
// disconnects, and a larger one is simply loaded again.
const maxRecordAhead = 1 << 20

// recordAhead is the object record_iternext loaded to name the next oid:
// the next call returns it without loading it again, if it asks for that
// oid and nothing was published in between (limit is the same).
type recordAhead struct {
	oid    zodb.Oid
	limit  zodb.Tid
	data   []byte
	serial zodb.Tid
}
