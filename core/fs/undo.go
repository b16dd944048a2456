package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"

	"github.com/zrs-replication/zrs/core/zodb"
)

// UndoLog returns the undoable transactions newest first, as Python's
// undoLog: it walks back from the end, stops at the first packed ('p')
// transaction, skips any status other than ' ', skips the first `first`
// accepted ones and returns at most last-first. A negative last means
// "-last transactions" (last = first - last).
func (s *FileStorage) UndoLog(ctx context.Context, first, last int, filter func(*zodb.UndoInfo) bool) ([]zodb.UndoInfo, error) {
	if last < 0 {
		last = first - last
	}
	s.mu.RLock()
	end, closed := s.end, s.closed
	s.mu.RUnlock()
	if closed {
		return nil, zodb.ErrClosed
	}
	var out []zodb.UndoInfo
	for i, pos := 0, end; i < last && pos > MagicSize; {
		th, err := s.txnEndingAt(pos, end)
		if err != nil {
			return nil, err
		}
		pos = th.Pos
		if th.Status == zodb.StatusPacked {
			break
		}
		if th.Status != zodb.StatusCommitted {
			continue
		}
		meta, err := readMeta(s.rd, s.path, &th)
		if err != nil {
			return nil, err
		}
		info := zodb.UndoInfo{Tid: th.Tid, Time: th.Tid.Epoch(), User: meta.User,
			Description: meta.Description, Extension: meta.Extension, Size: th.Len}
		if filter == nil || filter(&info) {
			if i >= first {
				out = append(out, info)
			}
			i++
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// txnEndingAt reads the committed transaction whose trailer ends at pos.
func (s *FileStorage) txnEndingAt(pos, end int64) (TxnHeader, error) {
	var b [TrailerSize]byte
	if _, err := s.rd.ReadAt(b[:], pos-TrailerSize); err != nil {
		return TxnHeader{}, &RecordError{Path: s.path, Record: "transaction", Pos: pos - TrailerSize, Err: err}
	}
	tpos := pos - TrailerSize - int64(binary.BigEndian.Uint64(b[:]))
	if tpos < MagicSize || tpos >= pos {
		return TxnHeader{}, &RecordError{Path: s.path, Record: "transaction", Pos: pos - TrailerSize,
			Err: corrupt("trailer points outside the file")}
	}
	return ReadTxnHeader(s.rd, s.path, tpos, end)
}

// findTxn returns the committed transaction with the given tid, and false
// if there is none. It starts from the nearest TxnMap sample: forward from
// the sample at or before tid, or backward from the end (or the first
// sample after tid) when there is none. It searches up to the end of
// finished transactions, fsynced or not: it serves transactions in
// progress (undo, restore), which come after them.
func (s *FileStorage) findTxn(tid zodb.Tid) (TxnHeader, bool, error) {
	s.mu.RLock()
	end := s.wend
	s.mu.RUnlock()
	if smp, ok := s.txnmap.Floor(tid); ok && smp.Pos < end {
		return s.findTxnForward(tid, smp.Pos, end)
	}
	from := end
	if smp, ok := s.txnmap.Ceil(tid); ok && smp.Pos < end {
		th, err := ReadTxnHeader(s.rd, s.path, smp.Pos, end)
		if err != nil {
			return th, false, err
		}
		if th.Tid == tid {
			return th, true, nil
		}
		from = smp.Pos
	}
	return s.findTxnBackward(tid, from, end)
}

// findTxnForward scans headers from pos until tid is found or passed.
func (s *FileStorage) findTxnForward(tid zodb.Tid, pos, end int64) (TxnHeader, bool, error) {
	for pos < end {
		th, err := ReadTxnHeader(s.rd, s.path, pos, end)
		if err != nil {
			return th, false, err
		}
		if th.Tid >= tid {
			return th, th.Tid == tid, nil
		}
		pos = th.Next()
	}
	return TxnHeader{}, false, nil
}

// findTxnBackward scans headers back from the transaction ending at pos.
func (s *FileStorage) findTxnBackward(tid zodb.Tid, pos, end int64) (TxnHeader, bool, error) {
	for pos > MagicSize {
		th, err := s.txnEndingAt(pos, end)
		if err != nil {
			return th, false, err
		}
		if th.Tid <= tid {
			return th, th.Tid == tid, nil
		}
		pos = th.Pos
	}
	return TxnHeader{}, false, nil
}

// records returns the data record headers of the committed transaction th.
func (s *FileStorage) records(th *TxnHeader) ([]DataHeader, error) {
	var out []DataHeader
	for pos := th.DataPos(); pos < th.End(); {
		d, err := ReadDataHeader(s.rd, s.path, pos, th)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		pos = d.Next()
	}
	return out, nil
}

// Restore writes a revision exactly as given (IStorageRestoreable): no
// conflict check, the record's tid is serial. With a non-zero dataTxn the
// transaction dataTxn is looked up in this file and, if its last record of
// oid is a backpointer or holds exactly data, a backpointer to that record
// is written instead of the data. As in Python ZODB, a dataTxn missing
// from this file is an error (*zodb.UndoError "invalid transaction id"),
// not a hint. Nil data without a usable backpointer writes a deletion.
func (t *txn) Restore(oid zodb.Oid, serial zodb.Tid, data []byte, dataTxn zodb.Tid) error {
	if err := t.lockOpen(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	s := t.s
	s.mu.RLock()
	prev, _ := s.index.Get(oid)
	s.mu.RUnlock()
	if dataTxn != 0 {
		th, ok, err := s.findTxn(dataTxn)
		if err != nil {
			return err
		}
		if !ok {
			return &zodb.UndoError{Tid: dataTxn, Oid: oid, Reason: "invalid transaction id"}
		}
		back, err := s.dataFind(&th, oid, data)
		if err != nil {
			return err
		}
		if back != 0 {
			s.noteOid(oid)
			t.appendRecord(oid, serial, prev, nil, back)
			return nil
		}
	}
	s.noteOid(oid)
	t.appendRecord(oid, serial, prev, data, 0)
	return nil
}

// dataFind returns the position of the last record of oid in th if it is a
// backpointer (trusted as is) or holds exactly data; 0 otherwise.
func (s *FileStorage) dataFind(th *TxnHeader, oid zodb.Oid, data []byte) (int64, error) {
	recs, err := s.records(th)
	if err != nil {
		return 0, err
	}
	var found *DataHeader
	for j := len(recs) - 1; j >= 0; j-- {
		if recs[j].Oid == oid {
			found = &recs[j]
			break
		}
	}
	switch {
	case found == nil:
		return 0, nil
	case found.PLen == 0:
		return found.Pos, nil
	case found.PLen != int64(len(data)):
		s.log.Warn("mismatch between data and backpointer", "oid", oid, logKeyPos, found.Pos)
		return 0, nil
	}
	buf := make([]byte, found.PLen)
	if _, err := s.rd.ReadAt(buf, found.Pos+DataHeaderSize); err != nil {
		return 0, &RecordError{Path: s.path, Record: "data record", Pos: found.Pos, Err: err}
	}
	if !bytes.Equal(buf, data) {
		return 0, nil
	}
	return found.Pos, nil
}

// Undo writes records reversing the committed transaction tid, which must
// have status ' ', and returns the oids touched. Each record becomes a
// backpointer to the undone record's previous revision (a zero backpointer
// when undoing a creation), provided the oid's current revision is the one
// being undone or carries the same data. Otherwise Python would try
// conflict resolution, which zrs does not do: the undo fails with a
// *zodb.UndoError and the transaction is left as it was before the call.
func (t *txn) Undo(ctx context.Context, tid zodb.Tid) ([]zodb.Oid, error) {
	if err := t.lockOpen(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	s := t.s
	th, ok, err := s.findTxn(tid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &zodb.UndoError{Tid: tid, Reason: "invalid transaction id"}
	}
	if th.Status != zodb.StatusCommitted {
		return nil, &zodb.UndoError{Tid: tid, Reason: "non-undoable transaction"}
	}
	recs, err := s.records(&th)
	if err != nil {
		return nil, err
	}
	return t.undoRecords(tid, recs)
}

// undoRecords appends the undo records for recs; on failure it restores
// the transaction's buffer and index as they were. The caller holds t.mu.
func (t *txn) undoRecords(tid zodb.Tid, recs []DataHeader) ([]zodb.Oid, error) {
	saveLen, saveIdx, saveOids := len(t.buf), maps.Clone(t.tindex), len(t.oids)
	failures := map[zodb.Oid]error{}
	var order []zodb.Oid
	var touched []zodb.Oid
	for i := range recs {
		d := &recs[i]
		delete(failures, d.Oid)
		// Each record is judged against the state before this call, as
		// ZODB does: the records it writes join the transaction's index
		// only once the whole undone transaction is processed.
		back, ipos, err := t.undoTarget(tid, d, saveIdx[d.Oid])
		var uerr *zodb.UndoError
		if errors.As(err, &uerr) {
			failures[d.Oid] = err
			order = append(order, d.Oid)
			continue
		}
		if err != nil {
			t.buf, t.tindex, t.oids = t.buf[:saveLen], saveIdx, t.oids[:saveOids]
			return nil, err
		}
		t.appendRecord(d.Oid, t.tid, ipos, nil, back)
		touched = append(touched, d.Oid)
	}
	var errs []error
	for _, oid := range order {
		if err, ok := failures[oid]; ok {
			errs = append(errs, err)
			delete(failures, oid)
		}
	}
	if len(errs) > 0 {
		t.buf, t.tindex, t.oids = t.buf[:saveLen], saveIdx, t.oids[:saveOids]
		return nil, errors.Join(errs...)
	}
	return touched, nil
}

// undoTarget decides the backpointer that undoes record d of transaction
// tid, given tpos, the oid's record in this transaction before the undo
// began (0 if none), and returns it with the oid's committed position
// (the new record's prev). The caller holds t.mu.
func (t *txn) undoTarget(tid zodb.Tid, d *DataHeader, tpos int64) (back, ipos int64, err error) {
	s := t.s
	s.mu.RLock()
	ipos, _ = s.index.Get(d.Oid)
	s.mu.RUnlock()
	cur := ipos
	if tpos != 0 {
		cur = tpos
	}
	if cur != d.Pos {
		if err := t.sameDataAsCurrent(tid, d, ipos, tpos, cur); err != nil {
			return 0, 0, err
		}
	}
	return d.Prev, ipos, nil
}

// sameDataAsCurrent checks, when oid's current revision (at cur: tpos in
// this transaction, else ipos in the file) is not the record d being
// undone, that the current revision carries the same data as d: the same
// stored record, or another with the same bytes, as Python compares them.
// A chain ending in a deletion on either side is an *zodb.UndoError (what
// Python's POSKeyError becomes); damage is returned as it is.
func (t *txn) sameDataAsCurrent(tid zodb.Tid, d *DataHeader, ipos, tpos, cur int64) error {
	fail := func(reason string) error { return &zodb.UndoError{Tid: tid, Oid: d.Oid, Reason: reason} }
	cptr, err := t.currentDataPtr(d.Oid, ipos, tpos)
	if err != nil {
		return err
	}
	if cptr == d.Pos {
		return nil
	}
	undone, err := t.s.dataAt(d.Oid, d.Pos)
	var current []byte
	if err == nil {
		if tpos != 0 && cptr == cur {
			current = t.ownData(tpos)
		} else {
			current, err = t.s.dataAt(d.Oid, cptr)
		}
	}
	if errors.Is(err, errNoData) {
		return fail("the revision's data cannot be loaded: " + err.Error())
	}
	if err != nil {
		return err
	}
	if bytes.Equal(undone, current) {
		return nil
	}
	if d.Prev != 0 && tpos == 0 {
		return fail("some data were modified by a later transaction")
	}
	return fail("no previous record")
}

// ownData returns the pickle of the record this transaction wrote at pos,
// which holds one.
func (t *txn) ownData(pos int64) []byte {
	off := pos - t.pos - t.hlen
	d, _ := DecodeDataHeader(t.buf[off:], pos)
	return t.buf[off+DataHeaderSize : off+DataHeaderSize+d.PLen]
}

// currentDataPtr returns where oid's current revision keeps its data: its
// own position if it holds a pickle, else its backpointer (one hop).
func (t *txn) currentDataPtr(oid zodb.Oid, ipos, tpos int64) (int64, error) {
	var d DataHeader
	var back int64
	switch {
	case tpos != 0:
		off := tpos - t.pos - t.hlen
		d, _ = DecodeDataHeader(t.buf[off:], tpos)
		if d.PLen == 0 {
			back = int64(binary.BigEndian.Uint64(t.buf[off+DataHeaderSize:]))
		}
	case ipos != 0:
		s := t.s
		s.mu.RLock()
		end := s.wend
		s.mu.RUnlock()
		var err error
		if d, err = s.readRecord(ipos, end, oid); err != nil {
			return 0, err
		}
		if d.PLen == 0 {
			if back, err = ReadBackpointer(s.rd, s.path, &d); err != nil {
				return 0, err
			}
		}
	default:
		return 0, &zodb.UndoError{Oid: oid, Reason: "invalid undo transaction id"}
	}
	if d.PLen > 0 {
		return d.Pos, nil
	}
	return back, nil
}

// errNoData says a backpointer chain ends in a deletion.
var errNoData = errors.New("backpointer chain ends in a deletion")

// dataAt follows backpointers from the record of oid at pos to the record
// that holds its pickle and returns the pickle (errNoData for a deletion).
// Each record on the way is checked as a load checks it, so damage is a
// *RecordError at the damaged record.
func (s *FileStorage) dataAt(oid zodb.Oid, pos int64) ([]byte, error) {
	s.mu.RLock()
	end := s.wend
	s.mu.RUnlock()
	for hop := 0; hop < maxBackpointerHops; hop++ {
		if pos == 0 {
			return nil, errNoData
		}
		d, err := s.readRecord(pos, end, oid)
		if err != nil {
			return nil, err
		}
		if d.PLen > 0 {
			data := make([]byte, d.PLen)
			if _, err := s.rd.ReadAt(data, pos+DataHeaderSize); err != nil {
				return nil, &RecordError{Path: s.path, Record: "data record", Pos: pos, Err: err}
			}
			return data, nil
		}
		back, err := ReadBackpointer(s.rd, s.path, &d)
		if err != nil {
			return nil, err
		}
		end, pos = pos, back
	}
	return nil, &RecordError{Path: s.path, Record: "backpointer", Pos: pos, Err: corrupt("chain too long")}
}
