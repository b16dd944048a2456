package fs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/zrs-replication/zrs/core/zodb"
)

// lookup returns the position of oid's current committed record and the
// committed end. The index already holds the records of transactions
// finished but not yet fsynced (see Finish); readers must not see those,
// so a position past the committed end is followed back along its prev
// pointers to the newest revision below it.
func (s *FileStorage) lookup(oid zodb.Oid) (pos, end int64, err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, 0, zodb.ErrClosed
	}
	pos, ok := s.index.Get(oid)
	end, wend := s.end, s.wend
	s.mu.RUnlock()
	for ok && pos >= end {
		// Finished records are immutable: only a transaction in progress,
		// after wend, is ever truncated.
		d, err := s.readRecord(pos, wend, oid)
		if err != nil {
			return 0, 0, err
		}
		pos, ok = d.Prev, d.Prev != 0
	}
	if !ok {
		return 0, 0, &zodb.NotFoundError{Oid: oid}
	}
	return pos, end, nil
}

// readRecord reads the data record header at pos, which must belong to oid
// and lie inside the committed data ending at end.
func (s *FileStorage) readRecord(pos, end int64, oid zodb.Oid) (DataHeader, error) {
	fail := func(err error) (DataHeader, error) {
		return DataHeader{}, &RecordError{Path: s.path, Record: "data record", Pos: pos, Err: err}
	}
	if pos < MagicSize+TxnHeaderSize || pos+DataHeaderSize > end {
		return fail(corrupt("position %d outside the committed data", pos))
	}
	var buf [DataHeaderSize]byte
	if _, err := s.rd.ReadAt(buf[:], pos); err != nil {
		return fail(err)
	}
	d, _ := DecodeDataHeader(buf[:], pos)
	if err := checkLoadedHeader(&d, end, oid); err != nil {
		return fail(err)
	}
	if err := readInTxn(s.rd, &d); err != nil {
		return fail(err)
	}
	return d, nil
}

// recordData returns the data of record d resolved through backpointers,
// or a NotFoundError for a deletion (at tid, 0 for the current revision).
func (s *FileStorage) recordData(d *DataHeader, tid zodb.Tid) ([]byte, error) {
	data, _, err := ReadRecordData(s.rd, s.path, d)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, &zodb.NotFoundError{Oid: d.Oid, Tid: tid}
	}
	return data, nil
}

// Load returns the current revision of oid and its serial (the tid of the
// record the index points at, even when that record is a backpointer).
func (s *FileStorage) Load(ctx context.Context, oid zodb.Oid) ([]byte, zodb.Tid, error) {
	pos, end, err := s.lookup(oid)
	if err != nil {
		return nil, 0, err
	}
	if data, tid, ok := s.loadMapped(pos, end, oid); ok {
		return data, tid, nil
	}
	d, err := s.readRecord(pos, end, oid)
	if err != nil {
		return nil, 0, err
	}
	data, err := s.recordData(&d, 0)
	if err != nil {
		return nil, 0, err
	}
	return data, d.Tid, nil
}

// loadMapped is Load's fast path for the common case, a record with its
// own data inside the mapping: header and data are read in one pass over
// the mapping. Anything else (a backpointer, a deletion, damage, a range
// not mapped, a fault) reports false and Load takes the general path,
// which reads again and reports errors with their offsets.
func (s *FileStorage) loadMapped(pos, end int64, oid zodb.Oid) (data []byte, tid zodb.Tid, ok bool) {
	if pos < MagicSize+TxnHeaderSize || pos+DataHeaderSize > end {
		return nil, 0, false
	}
	// The whole mapping: the record's transaction header comes before it.
	mapped, err := s.rd.withMapped(0, func(m []byte) {
		if int64(len(m))-pos < DataHeaderSize {
			return
		}
		b := m[pos:]
		d, _ := DecodeDataHeader(b, pos)
		// checkLoadedHeader puts the transaction header before the record.
		if d.PLen <= 0 || checkLoadedHeader(&d, end, oid) != nil || int64(len(b))-DataHeaderSize < d.PLen ||
			checkInTxn(&d, binary.BigEndian.Uint64(m[d.Tloc+8:])) != nil {
			return
		}
		// append copies without first zeroing the new slice.
		data, tid = append([]byte(nil), b[DataHeaderSize:DataHeaderSize+d.PLen]...), d.Tid
	})
	return data, tid, mapped && err == nil && data != nil
}

// checkLoadedHeader checks a header found through the index or a prev
// pointer: the expected oid, no version, inside the committed data, its
// transaction header before it (checkInTxn then checks the record against
// that header).
func checkLoadedHeader(d *DataHeader, end int64, oid zodb.Oid) error {
	switch {
	case d.Oid != oid:
		return corrupt("record of oid %s where oid %s was expected (if zrs fs verify finds Data.fs sound, "+
			"Data.fs.index is stale or damaged: stop the server, delete Data.fs.index and start again; it is rebuilt)", d.Oid, oid)
	case d.VLen != 0:
		return corrupt("non-zero version length %d", d.VLen)
	case d.PLen < 0 || d.Next() > end || d.Tloc < MagicSize || d.Tloc+TxnHeaderSize > d.Pos || d.Prev >= d.Pos || d.Tid == 0:
		return corrupt("malformed record header")
	}
	return nil
}

// LoadBefore returns the newest revision of oid with a serial < before,
// walking the prev chain from the current record, and the serial of the
// revision after it (0 if it is current).
func (s *FileStorage) LoadBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	return s.AppendLoadBefore(ctx, nil, oid, before)
}

// AppendLoadBefore is LoadBefore appending the data to dst
// (zodb.LoadBeforeAppender): a record with data of its own is read
// straight into dst. On error it returns dst.
func (s *FileStorage) AppendLoadBefore(ctx context.Context, dst []byte, oid zodb.Oid, before zodb.Tid) ([]byte, zodb.Tid, zodb.Tid, error) {
	d, next, err := s.findBefore(ctx, oid, before)
	if err != nil {
		return dst, 0, 0, err
	}
	if d.PLen > 0 { // inside the committed data: readRecord checked it
		n := len(dst)
		out := zodb.GrowForData(dst, int(d.PLen))[:n+int(d.PLen)]
		if _, err := s.rd.ReadAt(out[n:], d.Pos+DataHeaderSize); err != nil {
			return dst, 0, 0, &RecordError{Path: s.path, Record: "data record", Pos: d.Pos, Err: err}
		}
		return out, d.Tid, next, nil
	}
	data, err := s.recordData(&d, before) // a backpointer or a deletion
	if err != nil {
		return dst, 0, 0, err
	}
	return append(zodb.GrowForData(dst, len(data)), data...), d.Tid, next, nil
}

// TidBefore returns the serial of oid's newest revision before before,
// reading headers only (zodb.TidBeforer). As Python's FileStorage.getTid,
// it fails only when that revision is a deletion or an undone creation
// itself (no data, backpointer 0); a revision that points back to one has
// a serial, though loading it fails.
func (s *FileStorage) TidBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) (zodb.Tid, error) {
	d, _, err := s.findBefore(ctx, oid, before)
	if err != nil {
		return 0, err
	}
	if d.PLen == 0 {
		var b [8]byte
		if _, err := s.rd.ReadAt(b[:], d.Pos+DataHeaderSize); err != nil {
			return 0, &RecordError{Path: s.path, Record: "data record", Pos: d.Pos, Err: err}
		}
		if binary.BigEndian.Uint64(b[:]) == 0 {
			return 0, &zodb.NotFoundError{Oid: oid, Tid: before}
		}
	}
	return d.Tid, nil
}

// findBefore returns the header of the newest revision of oid with a
// serial < before, walking the prev chain from the current record, and
// the serial of the revision after it (0 if it is current).
func (s *FileStorage) findBefore(ctx context.Context, oid zodb.Oid, before zodb.Tid) (DataHeader, zodb.Tid, error) {
	pos, end, err := s.lookup(oid)
	if err != nil {
		return DataHeader{}, 0, err
	}
	var next zodb.Tid
	for {
		d, err := s.readRecord(pos, end, oid)
		if err != nil {
			return DataHeader{}, 0, err
		}
		if d.Tid < before {
			return d, next, nil
		}
		if d.Prev == 0 {
			return DataHeader{}, 0, fmt.Errorf("object %s before %s: %w", oid, before, zodb.ErrNoRevision)
		}
		next, end, pos = d.Tid, pos, d.Prev
		if err := ctx.Err(); err != nil {
			return DataHeader{}, 0, err
		}
	}
}

// LoadSerial returns the revision of oid written with exactly serial.
func (s *FileStorage) LoadSerial(ctx context.Context, oid zodb.Oid, serial zodb.Tid) ([]byte, error) {
	pos, end, err := s.lookup(oid)
	if err != nil {
		return nil, err
	}
	for pos != 0 {
		d, err := s.readRecord(pos, end, oid)
		if err != nil {
			return nil, err
		}
		if d.Tid == serial {
			return s.recordData(&d, serial)
		}
		if d.Tid < serial {
			break
		}
		end, pos = pos, d.Prev
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, &zodb.NotFoundError{Oid: oid, Tid: serial}
}

// History returns up to size revisions of oid, newest first, with the
// metadata of the transactions that wrote them. Size is the record's own
// pickle length (0 for backpointers and deletions), as Python reports it.
func (s *FileStorage) History(ctx context.Context, oid zodb.Oid, size int) ([]zodb.HistoryEntry, error) {
	pos, end, err := s.lookup(oid)
	if err != nil {
		return nil, err
	}
	var out []zodb.HistoryEntry
	for pos != 0 && len(out) < size {
		d, err := s.readRecord(pos, end, oid)
		if err != nil {
			return nil, err
		}
		_, meta, err := s.readTxnMeta(d.Tloc, end)
		if err != nil {
			return nil, err
		}
		out = append(out, zodb.HistoryEntry{
			Tid: d.Tid, Time: d.Tid.Epoch(),
			User: meta.User, Description: meta.Description, Extension: meta.Extension,
			Size: int(d.PLen),
		})
		end, pos = pos, d.Prev
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readTxnMeta reads the transaction header at pos (committed data ends at
// or after end) and its user, description and extension.
func (s *FileStorage) readTxnMeta(pos, end int64) (TxnHeader, zodb.TxnMeta, error) {
	s.mu.RLock()
	size := s.end
	s.mu.RUnlock()
	th, err := ReadTxnHeader(s.rd, s.path, pos, max(size, end))
	if err != nil {
		return th, zodb.TxnMeta{}, err
	}
	meta, err := readMeta(s.rd, s.path, &th)
	return th, meta, err
}

// readMeta reads the metadata strings following header th.
func readMeta(r io.ReaderAt, path string, th *TxnHeader) (zodb.TxnMeta, error) {
	n := int(th.ULen) + int(th.DLen) + int(th.ELen)
	var meta zodb.TxnMeta
	if n == 0 {
		return meta, nil
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, th.Pos+TxnHeaderSize); err != nil {
		return meta, &RecordError{Path: path, Record: "transaction", Pos: th.Pos, Err: err}
	}
	u, dl := int(th.ULen), int(th.DLen)
	meta.User = buf[:u:u]
	meta.Description = buf[u : u+dl : u+dl]
	meta.Extension = buf[u+dl:]
	return meta, nil
}
