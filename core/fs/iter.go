package fs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zrs-replication/zrs/core/zodb"
)

// iterBufMax is the largest transaction the iterator reads with one ReadAt;
// bigger ones are read record by record.
const iterBufMax = 4 << 20

// FileIterator walks the committed transactions of a Data.fs in file order,
// with the semantics of Python's FileIterator:
//
//   - start and stop are inclusive; iteration ends at the first transaction
//     with a tid greater than stop;
//   - it ends (io.EOF) at end, at a transaction with status 'c' (voted, not
//     finished), and at a torn tail: a header or transaction that extends
//     past end (Unfinished then says where); over a storage's committed
//     data (Committed), where neither can be, both are damage: a
//     *RecordError;
//   - transactions with the legacy status 'u' are skipped (Python's
//     iterator fails on them; its index scan skips them);
//   - a damaged transaction (bad trailer, length shorter than its header,
//     zero tid, unknown status, bad data record) is a *RecordError naming
//     its offset; the error is sticky.
//
// Record data is resolved through backpointers; DataRecord.DataTxn is the
// tid of the record one hop away, as Python reports data_txn.
//
// Finding start costs O(1) reads when start is near either end of the file
// or near a TxnMap sample (see NewFileIterator). A FileIterator is used by
// one goroutine at a time.
type FileIterator struct {
	r     io.ReaderAt
	path  string
	end   int64    // committed data ends here
	stop  zodb.Tid // inclusive
	pos   int64    // offset of the next transaction header
	err   error    // sticky: io.EOF or the first error
	close io.Closer
	cur   TxnHeader // header of the transaction last returned
	reuse bool      // ReuseBuffers: the window's buffer is reused by every refill
	// committed: everything below end is finished and fsynced (a
	// storage's iterator), so a torn tail or a 'c' below it is damage.
	committed  bool
	unfinished error // where iteration stopped at a torn tail or a 'c'
	// unfinishedCommit: that stop looked, when read, like a commit in
	// progress: status 'c', or a header cut before its status.
	unfinishedCommit bool
	win              iterWindowReader
	info             *zodb.TxnInfo // with reuse: the TxnInfo every Next returns
}

// iterWindow is how far ahead the iterator reads: transactions are parsed
// out of windows of at least this many bytes, each read with one ReadAt, so
// a file of small transactions costs one system call (or one copy out of
// the mapping) per window instead of several per transaction, and record data
// slices the window instead of being copied again. A transaction larger
// than the window gets a window of its own, up to iterBufMax.
const iterWindow = 256 << 10

var _ zodb.TxnIterator = (*FileIterator)(nil)

// ReuseBuffers makes every later Next read into one buffer that the
// previous transaction's metadata and record data alias: a TxnInfo is then
// valid only until the next call to Next. A consumer that handles each
// transaction before asking for the next (a replication stream writing it
// to the network) avoids allocating garbage the size of everything it
// reads. By default every read-ahead window is a buffer of its own that
// the TxnInfos parsed from it share, so a TxnInfo stays valid for good
// (and keeps its window, at most iterWindow or its own size, alive).
func (it *FileIterator) ReuseBuffers(on bool) { it.reuse = on }

// Committed tells the iterator that everything below its end is finished
// and fsynced, as a storage's committed data is: a transaction there that
// extends past end, or whose status is still 'c', is damage (a
// *RecordError), not the tail of a commit in progress. Without it
// iteration ends there quietly, as Python's does on a live file.
func (it *FileIterator) Committed() { it.committed = true }

// Unfinished returns, after Next has returned io.EOF, the transaction at
// which iteration stopped before end — a commit in progress or a crash's
// torn tail (see Committed) — as a *RecordError naming its offset; nil if
// iteration reached end or stop.
func (it *FileIterator) Unfinished() error { return it.unfinished }

// NewFileIterator returns an iterator over the transactions of the file r
// (named path in errors) with start <= tid <= stop, reading nothing at or
// after end (the storage's committed end, or the file size). m may be nil;
// when given, its samples bound the search for start.
//
// The search for start reads the transaction at each bound found (the
// first transaction and the map's floor sample below start; the map's ceil
// sample or the last transaction, found through the trailer at end-8,
// above it), then walks from the bound nearer in tid: forward by tlen or
// backward by trailers. If the last transaction cannot be found (a torn
// tail) it walks forward.
func NewFileIterator(r io.ReaderAt, path string, end int64, start, stop zodb.Tid, m *TxnMap) (*FileIterator, error) {
	it := &FileIterator{r: r, path: path, end: end, stop: stop, pos: MagicSize, win: iterWindowReader{r: r}}
	if end <= MagicSize || start == 0 {
		return it, nil
	}
	pos, err := it.seek(start, m)
	if err != nil {
		return nil, err
	}
	it.pos = pos
	return it, nil
}

// OpenFileIterator opens path read-only (without taking its lock), checks
// its magic (FS30 or FS21) and iterates it up to its current size. Close
// closes the file.
func OpenFileIterator(path string, start, stop zodb.Tid) (*FileIterator, error) {
	f, size, err := iterOpenFile(path)
	if err != nil {
		return nil, err
	}
	it, err := NewFileIterator(f, path, size, start, stop, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	it.close = f
	return it, nil
}

// iterOpenFile opens path read-only and checks its magic. An empty file
// is accepted (it has no transactions).
func iterOpenFile(path string) (*os.File, int64, error) {
	if err := checkRegular(path); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = iterCheckMagic(f, path, fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// checkRegular refuses what is not a regular file before opening it: a
// named pipe would block the open until a writer came, a directory fails
// later with less to go on.
func checkRegular(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return fmt.Errorf("%s: is a directory: give the Data.fs file in it", path)
	case m&os.ModeNamedPipe != 0:
		return fmt.Errorf("%s: not a regular file (a named pipe): give the Data.fs file", path)
	default:
		return fmt.Errorf("%s: not a regular file (%v): give the Data.fs file", path, m.Type())
	}
}

// iterCheckMagic checks the 4-byte file header of a file of the given size.
func iterCheckMagic(r io.ReaderAt, path string, size int64) error {
	if size == 0 {
		return nil
	}
	var b [MagicSize]byte
	if size < MagicSize {
		return &RecordError{Path: path, Record: "file header", Pos: 0, Err: fmt.Errorf("%w: %d-byte file", ErrBadMagic, size)}
	}
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return &RecordError{Path: path, Record: "file header", Pos: 0, Err: err}
	}
	if b != Magic30 && b != Magic21 {
		return &RecordError{Path: path, Record: "file header", Pos: 0, Err: fmt.Errorf("%w: %q", ErrBadMagic, b[:])}
	}
	return nil
}

// Close releases the iterator, and closes the file if OpenFileIterator
// opened it. It is idempotent.
func (it *FileIterator) Close() error {
	it.err = zodb.ErrClosed
	c := it.close
	it.close = nil
	if c != nil {
		return c.Close()
	}
	return nil
}

// Next returns the next transaction with its records, or io.EOF.
func (it *FileIterator) Next(ctx context.Context) (*zodb.TxnInfo, error) {
	h, err := it.NextHeader(ctx)
	if err != nil {
		return nil, err
	}
	info, err := it.readTxn(&h)
	if err != nil {
		it.err = err
		return nil, err
	}
	return info, nil
}

// NextHeader returns the header of the next transaction without reading
// its metadata or records (a fast walk for tools), or io.EOF. It follows
// the same rules as Next, which it advances.
func (it *FileIterator) NextHeader(ctx context.Context) (TxnHeader, error) {
	if it.err != nil {
		return TxnHeader{}, it.err
	}
	if err := ctx.Err(); err != nil {
		return TxnHeader{}, err
	}
	h, err := it.nextHeader()
	if err != nil {
		it.err = err
	}
	it.cur = h
	return h, err
}

func (it *FileIterator) nextHeader() (TxnHeader, error) {
	for {
		if it.pos >= it.end {
			return TxnHeader{}, io.EOF
		}
		it.readAhead(it.pos)
		h, err := ReadTxnHeader(&it.win, it.path, it.pos, it.end)
		if err != nil {
			if iterTornTail(err) {
				var st [1]byte
				n, _ := it.win.ReadAt(st[:], it.pos+16)
				it.unfinishedCommit = it.pos+17 > it.end || n < 1 || st[0] == byte(zodb.StatusCheckpoint)
				return it.stopUnfinished(err)
			}
			return TxnHeader{}, err
		}
		if h.Status == zodb.StatusCheckpoint {
			it.unfinishedCommit = true
			return it.stopUnfinished(&RecordError{Path: it.path, Record: "transaction", Pos: h.Pos,
				Err: corrupt("status 'c': voted, never finished")})
		}
		if h.Tid > it.stop {
			return TxnHeader{}, io.EOF
		}
		it.pos = h.Next()
		if h.Status == 'u' {
			continue
		}
		if !h.Status.Valid() {
			return TxnHeader{}, &RecordError{Path: it.path, Record: "transaction", Pos: h.Pos, Err: corrupt("invalid status %q", byte(h.Status))}
		}
		return h, nil
	}
}

// stopUnfinished ends iteration at a torn tail or a transaction with
// status 'c' (err says which): io.EOF, remembered for Unfinished, or,
// inside committed data, err itself.
func (it *FileIterator) stopUnfinished(err error) (TxnHeader, error) {
	var re *RecordError
	if !errors.As(err, &re) {
		err = &RecordError{Path: it.path, Record: "transaction", Pos: it.pos, Err: err}
	}
	if it.committed {
		return TxnHeader{}, fmt.Errorf("%w (inside the committed data, which ends at %d)", err, it.end)
	}
	it.unfinished = err
	return TxnHeader{}, io.EOF
}

// iterTornTail reports whether a header read failed because the transaction
// extends past the end of the data: the tail of a crashed write.
func iterTornTail(err error) bool {
	return errors.Is(err, ErrTruncated) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readTxn reads the metadata and data records of the transaction h.
func (it *FileIterator) readTxn(h *TxnHeader) (*zodb.TxnInfo, error) {
	r, err := it.txnReader(h)
	if err != nil {
		return nil, err
	}
	info := &zodb.TxnInfo{}
	if it.reuse {
		// Valid until the next Next: the struct and its records are reused.
		if it.info == nil {
			it.info = info
		}
		info = it.info
		*info = zodb.TxnInfo{Records: info.Records[:0]}
	}
	info.Tid, info.Status, info.Pos = h.Tid, h.Status, h.Pos
	if err := iterReadMeta(r, it.path, h, &info.TxnMeta); err != nil {
		return nil, err
	}
	if r == &it.win && it.windowRecords(h, info) {
		return info, nil
	}
	err = iterDataRecords(r, it.path, h, func(d DataHeader) error {
		data, dataTxn, err := it.recordData(r, &d)
		if err != nil {
			return err
		}
		info.Records = append(info.Records, zodb.DataRecord{Oid: d.Oid, Tid: d.Tid, Data: data, DataTxn: dataTxn})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// windowRecords appends the data records of h, which the window holds
// whole, to info.Records, decoding each header in place and slicing its
// data from the window: the common case of iterDataRecords and
// recordData without a read or a callback per record, with
// ReadDataHeader's checks (DataHeader.fitsIn). At a record it does not
// take — a backpointer (PLen 0) or one that fails a check — it truncates
// info.Records back and reports false, and the general path redoes the
// transaction (and reports the damage with its offset).
func (it *FileIterator) windowRecords(h *TxnHeader, info *zodb.TxnInfo) bool {
	w := &it.win
	base := h.DataPos()
	data := w.buf[base-w.base : h.End()-w.base]
	n := len(info.Records)
	for off := 0; off < len(data); {
		b := data[off:]
		if len(b) < DataHeaderSize {
			info.Records = info.Records[:n]
			return false
		}
		d := decodeDataHeader(b, base+int64(off))
		if d.PLen == 0 || !d.fitsIn(h) {
			info.Records = info.Records[:n]
			return false
		}
		end := DataHeaderSize + int(d.PLen)
		info.Records = append(info.Records, zodb.DataRecord{Oid: d.Oid, Tid: d.Tid, Data: b[DataHeaderSize:end:end]})
		off += end
	}
	return true
}

// readAhead makes the window hold the transaction at pos, its header and
// trailer included, when that transaction is at most iterBufMax long and
// inside the data. Otherwise, or when a read fails (which empties the
// window), the header read that follows goes to the file and reports any
// damage or error with its offset.
func (it *FileIterator) readAhead(pos int64) {
	if it.end-pos < TxnHeaderSize {
		return
	}
	// Learn the length first, so that a transaction larger than the
	// window is read once, into a window of its own size.
	b, err := readSmall(&it.win, pos, TxnHeaderSize)
	if err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(b[8:16])) + TrailerSize
	if n <= TrailerSize || n > iterBufMax+TrailerSize || n > it.end-pos {
		return // damaged, torn or large: read from the file
	}
	if _, ok := it.win.slice(pos, n); !ok {
		it.fill(pos, n)
	}
}

// fill reads the window [pos, pos+max(n+TxnHeaderSize, iterWindow)),
// clipped to the end of the data; n <= it.end-pos. Reaching past n by a
// header means the next transaction's length is known from the window
// even when this one fills it: no small read per transaction.
func (it *FileIterator) fill(pos, n int64) {
	size := min(max(n+TxnHeaderSize, iterWindow), it.end-pos)
	var buf []byte
	if it.reuse && int64(cap(it.win.buf)) >= size {
		buf = it.win.buf[:size]
	} else {
		buf = make([]byte, size)
	}
	it.win.base, it.win.buf = pos, nil
	if _, err := it.r.ReadAt(buf, pos); err == nil {
		it.win.buf = buf
	}
}

// txnReader returns a reader for the transaction h: the window when it
// holds h (readAhead put it there if it fits), the file otherwise.
func (it *FileIterator) txnReader(h *TxnHeader) (io.ReaderAt, error) {
	if _, ok := it.win.slice(h.Pos, h.Len); ok {
		return &it.win, nil
	}
	return it.r, nil
}

// iterReadMeta reads the user, description and extension of h.
func iterReadMeta(r io.ReaderAt, path string, h *TxnHeader, meta *zodb.TxnMeta) error {
	n := int(h.ULen) + int(h.DLen) + int(h.ELen)
	if n == 0 {
		return nil
	}
	b, err := readSmall(r, h.Pos+TxnHeaderSize, n)
	if err != nil {
		return &RecordError{Path: path, Record: "transaction", Pos: h.Pos, Err: err}
	}
	u, d := int(h.ULen), int(h.ULen)+int(h.DLen)
	meta.User = iterNonEmpty(b[:u:u])
	meta.Description = iterNonEmpty(b[u:d:d])
	meta.Extension = iterNonEmpty(b[d:])
	return nil
}

func iterNonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// iterDataRecords calls fn for each data record header of h in file order. It
// checks that the records tile the transaction's data area exactly.
func iterDataRecords(r io.ReaderAt, path string, h *TxnHeader, fn func(DataHeader) error) error {
	for pos := h.DataPos(); pos < h.End(); {
		d, err := ReadDataHeader(r, path, pos, h)
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		pos = d.Next()
	}
	return nil
}

// recordData resolves the data of record d.
func (it *FileIterator) recordData(r io.ReaderAt, d *DataHeader) ([]byte, zodb.Tid, error) {
	if d.PLen > 0 {
		if b, ok := windowSlice(r, d.Pos+DataHeaderSize, d.PLen); ok {
			return b, 0, nil
		}
	}
	return ReadRecordData(r, it.path, d)
}

// iterWindowReader serves reads inside [base, base+len(buf)) from buf and the
// rest from r.
type iterWindowReader struct {
	r    io.ReaderAt
	base int64
	buf  []byte
}

// slice returns the n bytes at off without copying when they lie inside
// the window.
func (w *iterWindowReader) slice(off, n int64) ([]byte, bool) {
	if off < w.base || n < 0 || off-w.base > int64(len(w.buf)) || n > int64(len(w.buf))-(off-w.base) {
		return nil, false
	}
	i := off - w.base
	return w.buf[i : i+n : i+n], true
}

// windowSlice returns the n bytes at off without copying when r is an
// iterator's window that holds them.
func windowSlice(r io.ReaderAt, off, n int64) ([]byte, bool) {
	if w, ok := r.(*iterWindowReader); ok {
		return w.slice(off, n)
	}
	return nil, false
}

func (w *iterWindowReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= w.base && off-w.base <= int64(len(w.buf)) && int64(len(p)) <= int64(len(w.buf))-(off-w.base) {
		return copy(p, w.buf[off-w.base:]), nil
	}
	return w.r.ReadAt(p, off)
}

// seek returns the offset of the first transaction with tid >= start (or
// the offset where the walk stopped: end, a torn tail, a damaged header,
// which Next then reports).
func (it *FileIterator) seek(start zodb.Tid, m *TxnMap) (int64, error) {
	lo, err := it.header(MagicSize)
	if err != nil || lo.Tid >= start {
		return MagicSize, nil // Next reports the damage, if any
	}
	if s, ok := m.floor(start); ok && s.Pos > lo.Pos && s.Pos < it.end {
		if h, err := it.header(s.Pos); err == nil && h.Tid == s.Tid {
			lo = h
		}
	}
	if lo.Tid == start {
		return lo.Pos, nil
	}
	hi, ok := it.upperBound(start, m)
	switch {
	case !ok || hi.Tid < lo.Tid || hi.Pos <= lo.Pos:
		return it.walkForward(lo, start), nil
	case hi.Tid < start:
		return hi.Next(), nil // every transaction is before start
	case uint64(start-lo.Tid) < uint64(hi.Tid-start):
		return it.walkForward(lo, start), nil
	}
	if pos, ok := it.walkBackward(hi, lo, start); ok {
		return pos, nil
	}
	return it.walkForward(lo, start), nil
}

// upperBound returns a transaction with tid >= start from the map, or the
// last transaction of the file (whose tid may be < start); false if
// neither could be read.
func (it *FileIterator) upperBound(start zodb.Tid, m *TxnMap) (TxnHeader, bool) {
	if s, ok := m.ceil(start); ok && s.Pos < it.end {
		if h, err := it.header(s.Pos); err == nil && h.Tid == s.Tid {
			return h, true
		}
	}
	h, err := it.lastHeader()
	return h, err == nil
}

// header reads the transaction header at pos, bounded by the iterator's end.
func (it *FileIterator) header(pos int64) (TxnHeader, error) {
	return ReadTxnHeader(it.r, it.path, pos, it.end)
}

// lastHeader finds the last transaction through the trailer at end-8.
func (it *FileIterator) lastHeader() (TxnHeader, error) {
	return it.prevHeader(it.end)
}

// prevHeader reads the transaction that ends just before pos, through the
// trailer at pos-8.
func (it *FileIterator) prevHeader(pos int64) (TxnHeader, error) {
	fail := func(err error) (TxnHeader, error) {
		return TxnHeader{}, &RecordError{Path: it.path, Record: "transaction trailer", Pos: pos - TrailerSize, Err: err}
	}
	if pos < MagicSize+TxnHeaderSize+TrailerSize {
		return fail(corrupt("no transaction ends at %d", pos))
	}
	var b [TrailerSize]byte
	if _, err := it.r.ReadAt(b[:], pos-TrailerSize); err != nil {
		return fail(err)
	}
	tlen := int64(binary.BigEndian.Uint64(b[:]))
	if tlen < TxnHeaderSize || tlen > pos-TrailerSize-MagicSize {
		return fail(corrupt("trailer %d out of range", tlen))
	}
	return it.header(pos - TrailerSize - tlen)
}

// walkForward steps from h by transaction lengths to the first transaction
// with tid >= start, or to where the headers stop being readable.
func (it *FileIterator) walkForward(h TxnHeader, start zodb.Tid) int64 {
	for h.Tid < start {
		next := h.Next()
		if next >= it.end {
			return next
		}
		var err error
		if h, err = it.header(next); err != nil {
			return next
		}
	}
	return h.Pos
}

// walkBackward steps back by trailers from hi (tid >= start) towards lo
// (tid < start) and returns the first transaction with tid >= start; false
// if a trailer could not be followed.
func (it *FileIterator) walkBackward(hi, lo TxnHeader, start zodb.Tid) (int64, bool) {
	for hi.Pos > lo.Pos {
		prev, err := it.prevHeader(hi.Pos)
		if err != nil {
			return 0, false
		}
		if prev.Tid < start {
			return hi.Pos, true
		}
		hi = prev
	}
	return hi.Pos, true
}
