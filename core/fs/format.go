package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/zrs-replication/zrs/core/zodb"
)

// On-disk sizes and magics of FileStorage format 1.
const (
	MagicSize      = 4  // "FS30" or "FS21" at offset 0
	TxnHeaderSize  = 23 // tid(8) tlen(8) status(1) ulen(2) dlen(2) elen(2)
	DataHeaderSize = 42 // oid(8) tid(8) prev(8) tloc(8) vlen(2) plen(8)
	TrailerSize    = 8  // the transaction length repeated after each transaction
	BackptrSize    = 8  // the backpointer that replaces data when plen == 0

	// MaxPos is the largest position the .index file can record (48 bits).
	MaxPos = 1<<48 - 1
)

// Magics.
var (
	Magic30 = [4]byte{'F', 'S', '3', '0'} // written by Python 3 ZODB and zrs
	Magic21 = [4]byte{'F', 'S', '2', '1'} // written by Python 2 ZODB; read only
)

// Errors that callers branch on; RecordError wraps them with the place.
var (
	ErrBadMagic  = errors.New("not a FileStorage file (bad magic)")
	ErrCorrupted = errors.New("corrupted record")
	ErrTruncated = errors.New("record extends past the end of the file")
)

// RecordError tells an operator exactly where a file is bad: which file,
// which record, at which byte offset, and what is wrong with it.
type RecordError struct {
	Path   string // the Data.fs path, "" if unknown
	Record string // "file header", "transaction", "data record", "backpointer"
	Pos    int64  // byte offset of the record in the file
	Err    error  // what is wrong; wraps ErrCorrupted or ErrTruncated
}

func (e *RecordError) Error() string {
	p := e.Path
	if p == "" {
		p = "<data>"
	}
	return fmt.Sprintf("%s: %s at offset %d: %v", p, e.Record, e.Pos, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// corrupt builds an ErrCorrupted-wrapping error text.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupted, fmt.Sprintf(format, args...))
}

// TxnHeader mirrors the 23-byte transaction header field by field.
type TxnHeader struct {
	Pos    int64          // offset of the header in the file
	Tid    zodb.Tid       // transaction id
	Len    int64          // tlen: header + metadata + data records, without the trailer
	Status zodb.TxnStatus // ' ', 'p', 'c' (or legacy 'u')
	ULen   uint16         // length of user
	DLen   uint16         // length of description
	ELen   uint16         // length of extension
}

// HeaderLen returns the length of the header plus its metadata strings.
func (h *TxnHeader) HeaderLen() int64 {
	return TxnHeaderSize + int64(h.ULen) + int64(h.DLen) + int64(h.ELen)
}

// DataPos returns the offset of the first data record.
func (h *TxnHeader) DataPos() int64 { return h.Pos + h.HeaderLen() }

// End returns the offset where data records end (where the trailer starts).
func (h *TxnHeader) End() int64 { return h.Pos + h.Len }

// Next returns the offset of the following transaction.
func (h *TxnHeader) Next() int64 { return h.Pos + h.Len + TrailerSize }

// DecodeTxnHeader parses a transaction header from b (at least 23 bytes)
// located at pos. It checks nothing but the length of b.
func DecodeTxnHeader(b []byte, pos int64) (TxnHeader, error) {
	if len(b) < TxnHeaderSize {
		return TxnHeader{}, fmt.Errorf("%w: transaction header needs %d bytes, have %d", ErrTruncated, TxnHeaderSize, len(b))
	}
	return TxnHeader{
		Pos:    pos,
		Tid:    zodb.Tid(binary.BigEndian.Uint64(b[0:8])),
		Len:    int64(binary.BigEndian.Uint64(b[8:16])),
		Status: zodb.TxnStatus(b[16]),
		ULen:   binary.BigEndian.Uint16(b[17:19]),
		DLen:   binary.BigEndian.Uint16(b[19:21]),
		ELen:   binary.BigEndian.Uint16(b[21:23]),
	}, nil
}

// Encode appends the 23-byte header to b.
func (h *TxnHeader) Encode(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(h.Tid))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Len))
	b = append(b, byte(h.Status))
	b = binary.BigEndian.AppendUint16(b, h.ULen)
	b = binary.BigEndian.AppendUint16(b, h.DLen)
	return binary.BigEndian.AppendUint16(b, h.ELen)
}

// DataHeader mirrors the 42-byte data record header field by field.
type DataHeader struct {
	Pos  int64    // offset of the record in the file
	Oid  zodb.Oid // object id
	Tid  zodb.Tid // the record's serial (normally the transaction's tid)
	Prev int64    // offset of this oid's previous revision, 0 if none
	Tloc int64    // offset of the enclosing transaction header
	VLen uint16   // legacy version length; must be 0
	PLen int64    // length of the pickle; 0 means a backpointer follows
}

// RecordLen returns the full length of the record on disk.
func (d *DataHeader) RecordLen() int64 {
	if d.PLen == 0 {
		return DataHeaderSize + BackptrSize
	}
	return DataHeaderSize + d.PLen
}

// Next returns the offset just after this record.
func (d *DataHeader) Next() int64 { return d.Pos + d.RecordLen() }

// DecodeDataHeader parses a data record header from b (at least 42 bytes)
// located at pos. It checks nothing but the length of b.
func DecodeDataHeader(b []byte, pos int64) (DataHeader, error) {
	if len(b) < DataHeaderSize {
		return DataHeader{}, fmt.Errorf("%w: data record header needs %d bytes, have %d", ErrTruncated, DataHeaderSize, len(b))
	}
	return decodeDataHeader(b, pos), nil
}

// decodeDataHeader is DecodeDataHeader for b known to hold a header.
func decodeDataHeader(b []byte, pos int64) DataHeader {
	return DataHeader{
		Pos:  pos,
		Oid:  zodb.Oid(binary.BigEndian.Uint64(b[0:8])),
		Tid:  zodb.Tid(binary.BigEndian.Uint64(b[8:16])),
		Prev: int64(binary.BigEndian.Uint64(b[16:24])),
		Tloc: int64(binary.BigEndian.Uint64(b[24:32])),
		VLen: binary.BigEndian.Uint16(b[32:34]),
		PLen: int64(binary.BigEndian.Uint64(b[34:42])),
	}
}

// Encode appends the 42-byte header to b.
func (d *DataHeader) Encode(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(d.Oid))
	b = binary.BigEndian.AppendUint64(b, uint64(d.Tid))
	b = binary.BigEndian.AppendUint64(b, uint64(d.Prev))
	b = binary.BigEndian.AppendUint64(b, uint64(d.Tloc))
	b = binary.BigEndian.AppendUint16(b, d.VLen)
	return binary.BigEndian.AppendUint64(b, uint64(d.PLen))
}

// ReadTxnHeader reads and checks the transaction header at pos of a file of
// the given size: complete header, non-zero tid, a length that covers the
// header and its strings and fits in the file, and a matching trailer.
// The status is not judged here: callers decide what 'c' or 'u' mean.
func ReadTxnHeader(r io.ReaderAt, path string, pos, size int64) (TxnHeader, error) {
	fail := func(err error) (TxnHeader, error) {
		return TxnHeader{}, &RecordError{Path: path, Record: "transaction", Pos: pos, Err: err}
	}
	if pos+TxnHeaderSize > size {
		return fail(fmt.Errorf("%w: header needs %d bytes, %d left", ErrTruncated, TxnHeaderSize, size-pos))
	}
	buf, err := readSmall(r, pos, TxnHeaderSize)
	if err != nil {
		return fail(err)
	}
	h, _ := DecodeTxnHeader(buf, pos)
	if h.Tid == 0 || h.Tid > zodb.MaxTid {
		return fail(corrupt("invalid tid %s", h.Tid))
	}
	if h.Len < h.HeaderLen() {
		return fail(corrupt("transaction length %d shorter than its header %d", h.Len, h.HeaderLen()))
	}
	if h.Len > size || pos+h.Len+TrailerSize > size {
		return fail(fmt.Errorf("%w: transaction length %d, %d bytes left", ErrTruncated, h.Len, size-pos))
	}
	tb, err := readSmall(r, h.End(), TrailerSize)
	if err != nil {
		return fail(err)
	}
	if t := int64(binary.BigEndian.Uint64(tb)); t != h.Len {
		return fail(corrupt("trailer %d does not match transaction length %d", t, h.Len))
	}
	return h, nil
}

// readSmall returns the n bytes at pos of r: a slice of an iterator's
// window when r is one that holds them (no copy, no allocation), else a
// fresh copy.
func readSmall(r io.ReaderAt, pos int64, n int) ([]byte, error) {
	if b, ok := windowSlice(r, pos, int64(n)); ok {
		return b, nil
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, pos); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadDataHeader reads and checks the data record header at pos inside the
// transaction th: complete header, tloc pointing at th, vlen 0, the record
// inside the transaction, prev before the transaction.
func ReadDataHeader(r io.ReaderAt, path string, pos int64, th *TxnHeader) (DataHeader, error) {
	fail := func(err error) (DataHeader, error) {
		return DataHeader{}, &RecordError{Path: path, Record: "data record", Pos: pos, Err: err}
	}
	if pos+DataHeaderSize > th.End() {
		return fail(corrupt("header overruns transaction at %d ending at %d", th.Pos, th.End()))
	}
	b, err := readSmall(r, pos, DataHeaderSize)
	if err != nil {
		return fail(err)
	}
	d, _ := DecodeDataHeader(b, pos)
	if err := d.checkIn(th); err != nil {
		return fail(err)
	}
	return d, nil
}

// fitsIn reports whether a data record header is sound in its
// transaction th: tloc pointing at th, vlen 0, the record inside th, prev
// before th. checkIn says which rule a header breaks.
func (d *DataHeader) fitsIn(th *TxnHeader) bool {
	return d.Tloc == th.Pos && d.VLen == 0 && d.PLen >= 0 && d.PLen <= th.Len && d.Next() <= th.End() &&
		d.Prev >= 0 && d.Prev < th.Pos
}

// checkIn is fitsIn as an error naming the rule broken.
func (d *DataHeader) checkIn(th *TxnHeader) error {
	if d.fitsIn(th) {
		return nil
	}
	switch {
	case d.Tloc != th.Pos:
		return corrupt("tloc %d does not point at its transaction %d", d.Tloc, th.Pos)
	case d.VLen != 0:
		return corrupt("non-zero version length %d", d.VLen)
	case d.PLen < 0 || d.PLen > th.Len || d.Next() > th.End():
		return corrupt("record of length %d overruns transaction ending at %d", d.RecordLen(), th.End())
	default: // d.Prev < 0 || d.Prev >= th.Pos
		return corrupt("prev %d not before its transaction at %d", d.Prev, th.Pos)
	}
}

// ReadBackpointer reads the 8-byte backpointer of a record with PLen == 0.
func ReadBackpointer(r io.ReaderAt, path string, d *DataHeader) (int64, error) {
	var b [BackptrSize]byte
	if _, err := r.ReadAt(b[:], d.Pos+DataHeaderSize); err != nil {
		return 0, &RecordError{Path: path, Record: "backpointer", Pos: d.Pos, Err: err}
	}
	back := int64(binary.BigEndian.Uint64(b[:]))
	if back < 0 || back >= d.Tloc {
		return 0, &RecordError{Path: path, Record: "backpointer", Pos: d.Pos,
			Err: corrupt("backpointer %d not before its transaction at %d", back, d.Tloc)}
	}
	return back, nil
}

// maxBackpointerHops bounds a backpointer chain; each hop must also move to
// a strictly smaller offset, so a loop is impossible, but a long chain in a
// damaged file should still end with an error, not a long walk.
const maxBackpointerHops = 1 << 20

// ReadRecordData returns the pickle of data record d, following backpointers
// to the record that holds the bytes. It returns nil data for a deletion or
// undone creation (a zero backpointer). dataTxn is the tid of the record one
// hop away when d is a backpointer record (what Python's iterator reports as
// data_txn), 0 otherwise.
func ReadRecordData(r io.ReaderAt, path string, d *DataHeader) (data []byte, dataTxn zodb.Tid, err error) {
	cur := *d
	for hop := 0; hop < maxBackpointerHops; hop++ {
		if cur.PLen > 0 {
			data = make([]byte, cur.PLen)
			if _, err := r.ReadAt(data, cur.Pos+DataHeaderSize); err != nil {
				return nil, 0, &RecordError{Path: path, Record: "data record", Pos: cur.Pos, Err: err}
			}
			return data, dataTxn, nil
		}
		back, err := ReadBackpointer(r, path, &cur)
		if err != nil || back == 0 {
			return nil, dataTxn, err
		}
		next, err := readBackTarget(r, path, back, &cur)
		if err != nil {
			return nil, 0, err
		}
		if hop == 0 {
			dataTxn = next.Tid
		}
		cur = next
	}
	return nil, 0, &RecordError{Path: path, Record: "backpointer", Pos: d.Pos, Err: corrupt("chain longer than %d records", maxBackpointerHops)}
}

// readBackTarget reads the data record a backpointer of from points to and
// checks it is a record of the same oid, earlier in the file.
func readBackTarget(r io.ReaderAt, path string, back int64, from *DataHeader) (DataHeader, error) {
	fail := func(err error) (DataHeader, error) {
		return DataHeader{}, &RecordError{Path: path, Record: "backpointer", Pos: from.Pos, Err: err}
	}
	if back < MagicSize+TxnHeaderSize || back >= from.Pos {
		return fail(corrupt("backpointer %d out of range", back))
	}
	var buf [DataHeaderSize]byte
	if _, err := r.ReadAt(buf[:], back); err != nil {
		return fail(fmt.Errorf("reading target %d: %w", back, err))
	}
	t, _ := DecodeDataHeader(buf[:], back)
	switch {
	case t.Oid != from.Oid:
		return fail(corrupt("backpointer %d points at oid %s, want %s", back, t.Oid, from.Oid))
	case t.VLen != 0 || t.PLen < 0 || t.Tloc >= back:
		return fail(corrupt("backpointer %d points at a malformed record", back))
	case t.PLen > from.Tloc || back+t.RecordLen() > from.Tloc:
		// The target lies wholly before the transaction pointing at it;
		// this also bounds the allocation for a damaged length.
		return fail(corrupt("backpointer %d points at a record overrunning its transaction at %d", back, from.Tloc))
	}
	if err := readInTxn(r, &t); err != nil {
		return fail(fmt.Errorf("target %d: %w", back, err))
	}
	return t, nil
}

// readInTxn reads the length of the transaction d's tloc names and checks
// d against it (checkInTxn).
func readInTxn(r io.ReaderAt, d *DataHeader) error {
	var tlen [8]byte
	if _, err := r.ReadAt(tlen[:], d.Tloc+8); err != nil {
		return fmt.Errorf("reading its transaction header at %d: %w", d.Tloc, err)
	}
	return checkInTxn(d, binary.BigEndian.Uint64(tlen[:]))
}

// checkInTxn checks that data record d ends inside its transaction, of
// length tlen. A length damaged past the transaction's end would otherwise
// hand out the bytes that follow it (the next transaction's). FileStorage
// keeps no checksums: damage that keeps a record inside its transaction
// is not seen here; zrs fs verify checks that the records tile their
// transaction.
func checkInTxn(d *DataHeader, tlen uint64) error {
	if tlen > uint64(math.MaxInt64-d.Tloc) || d.Next() > d.Tloc+int64(tlen) {
		return corrupt("record ending at %d, past the end of its transaction (at %d, length %d)", d.Next(), d.Tloc, tlen)
	}
	return nil
}
