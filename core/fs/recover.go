package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/zrs-replication/zrs/core/zodb"
)

// minIndexPos is the smallest index position Python trusts: smaller
// databases always get their index rebuilt.
const minIndexPos = 100

// sanityRecords is how many data records of the last transaction are
// checked against a loaded index.
const sanityRecords = 5

// loadIndex sets up the index, the committed end and the last tid: from
// Data.fs.index when it passes the sanity checks, else by scanning the
// whole file; then it scans what follows the index's position (crash
// recovery). A rebuilt index is saved in read-write mode.
func (s *FileStorage) loadIndex() error {
	size, err := s.fileSize()
	if err != nil {
		return err
	}
	if size == 0 { // read-only open of an empty file
		s.index = NewIndex()
		return nil
	}
	idx, pos, tid, ok := s.tryIndexFile(size)
	if ok {
		s.log.Debug("using the saved index", logKeyFile, s.path+indexSuffix, logKeyPos, pos, "objects", idx.Len())
	} else {
		idx, pos, tid = NewIndex(), MagicSize, 0
	}
	if err := s.scan(idx, pos, tid, size); err != nil {
		return err
	}
	if s.readOnly {
		return nil
	}
	// The process that wrote the file may have died while its last
	// transactions waited for their fsync: marked committed, they may be
	// in the page cache only, and no Finish returned for them. They are
	// served from here on (loads, iterators, replication), so they are
	// made durable first, before an index that covers them, too.
	if err := s.fsync(); err != nil {
		return fmt.Errorf("%s: fsync after recovery: %w", s.path, err)
	}
	switch {
	case !ok:
		s.log.Info("rebuilt index, saving it", logKeyPos, s.end, "objects", s.index.Len())
		s.saveIndexOnOpen()
	case s.end-pos >= saveScannedIndex:
		// Python saves only a rebuilt index; saving after a long forward
		// scan too (after a crash: the index is written at a clean close)
		// spares the next open the same scan if this process dies again.
		s.log.Info("scanned past the saved index, saving it", "from", pos, logKeyPos, s.end, "objects", s.index.Len())
		s.saveIndexOnOpen()
	}
	return nil
}

// saveIndexOnOpen saves the index an open rebuilt or extended. The index
// is a cache of the file: failing to save it (a full disk, a directory
// not writable) costs the next open a scan, so it is a warning, not a
// reason to refuse the storage.
func (s *FileStorage) saveIndexOnOpen() {
	if err := s.saveIndex(); err != nil {
		s.log.Warn("cannot save the index; the next open will scan the file again", logKeyFile, s.path+indexSuffix, "err", err)
	}
}

// saveScannedIndex: a forward scan at least this long saves the index.
const saveScannedIndex = 64 << 20

// tryIndexFile loads Data.fs.index and checks it as Python's _check_sanity
// does. It returns the index, the position it covers and the tid of the
// transaction ending there, and false when the index must be rebuilt.
func (s *FileStorage) tryIndexFile(size int64) (*Index, int64, zodb.Tid, bool) {
	name := s.path + indexSuffix
	pos, idx, err := ReadIndexFile(name)
	switch {
	case err != nil:
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("ignoring unreadable index, rebuilding it", logKeyFile, name, "err", err)
		}
		return nil, 0, 0, false
	case pos < minIndexPos:
		return nil, 0, 0, false
	case pos > size:
		s.log.Warn("index covers more than the file, rebuilding it", logKeyFile, name, logKeyPos, pos, "size", size)
		return nil, 0, 0, false
	}
	r := newWindowReader(s.file, size)
	tid, tpos, ok := checkIndexSanity(r, idx, pos)
	if !ok {
		s.log.Warn("index does not match the file, rebuilding it", logKeyFile, name, logKeyPos, pos)
		return nil, 0, 0, false
	}
	// Straight from the file: each sample is 42 bytes anywhere, and the
	// window reader would read a window of 1 MiB for each.
	if oid, at, ok := sampleMatchesIndex(s.file, idx, pos); !ok {
		s.log.Warn("index does not match the file (it points an object at another's record), rebuilding it",
			logKeyFile, name, "oid", oid, logKeyPos, at)
		return nil, 0, 0, false
	}
	s.txnmap.Add(tid, tpos)
	return idx, pos, tid, true
}

// indexSample is how many index entries sampleMatchesIndex checks.
const indexSample = 64

// sampleMatchesIndex checks up to indexSample entries of idx, anywhere in
// the file (Python's check looks at the last transaction only): each
// must point, before end, at a record of its own oid. A damaged or
// foreign index is then rebuilt at the open instead of sending loads to
// the wrong records, which read as damage in Data.fs.
func sampleMatchesIndex(r io.ReaderAt, idx *Index, end int64) (zodb.Oid, int64, bool) {
	n := 0
	for oid, pos := range idx.pos { // a map's order: a different sample each open
		if n == indexSample {
			break
		}
		n++
		var b [DataHeaderSize]byte
		if pos < MagicSize+TxnHeaderSize || pos+DataHeaderSize > end {
			return oid, pos, false
		}
		if _, err := r.ReadAt(b[:], pos); err != nil {
			return oid, pos, false
		}
		if d, _ := DecodeDataHeader(b[:], pos); d.Oid != oid || d.Tloc >= pos {
			return oid, pos, false
		}
	}
	return 0, 0, true
}

// checkIndexSanity walks back from pos over the transactions before it and
// checks the first data records of the last non-empty one against idx.
// It returns the tid and position of the transaction ending at pos.
func checkIndexSanity(r io.ReaderAt, idx *Index, pos int64) (zodb.Tid, int64, bool) {
	var lastTid zodb.Tid
	lastPos := int64(-1)
	for end := pos; end > MagicSize; {
		h, ok := txnBefore(r, end)
		if !ok {
			return 0, 0, false
		}
		if lastPos < 0 {
			lastTid, lastPos = h.Tid, h.Pos
		}
		switch {
		case h.Status == 'u' || h.DataPos() == h.End():
			end = h.Pos
			continue
		case !h.Status.Valid():
			return 0, 0, false
		}
		return lastTid, lastPos, recordsMatchIndex(r, idx, &h)
	}
	return lastTid, lastPos, lastPos >= 0
}

// txnBefore reads the transaction whose trailer ends at end, checking that
// the trailer and the header agree.
func txnBefore(r io.ReaderAt, end int64) (TxnHeader, bool) {
	var b [TxnHeaderSize]byte
	if end < MagicSize+TxnHeaderSize+TrailerSize {
		return TxnHeader{}, false
	}
	if _, err := r.ReadAt(b[:TrailerSize], end-TrailerSize); err != nil {
		return TxnHeader{}, false
	}
	tl := int64(binary.BigEndian.Uint64(b[:TrailerSize]))
	tpos := end - TrailerSize - tl
	if tl < TxnHeaderSize || tpos < MagicSize {
		return TxnHeader{}, false
	}
	if _, err := r.ReadAt(b[:], tpos); err != nil {
		return TxnHeader{}, false
	}
	h, _ := DecodeTxnHeader(b[:], tpos)
	return h, h.Len == tl && h.HeaderLen() <= tl
}

// recordsMatchIndex checks up to sanityRecords data records of h: each is
// inside h, points back at h, and is the record idx has for its oid.
func recordsMatchIndex(r io.ReaderAt, idx *Index, h *TxnHeader) bool {
	pos := h.DataPos()
	for i := 0; i < sanityRecords && pos < h.End(); i++ {
		var b [DataHeaderSize]byte
		if pos+DataHeaderSize > h.End() {
			return false
		}
		if _, err := r.ReadAt(b[:], pos); err != nil {
			return false
		}
		d, _ := DecodeDataHeader(b[:], pos)
		if d.Tloc != h.Pos || d.PLen < 0 || d.Next() > h.End() {
			return false
		}
		if ipos, ok := idx.Get(d.Oid); !ok || ipos != pos {
			return false
		}
		pos = d.Next()
	}
	return true
}

// scan reads the transactions from pos to the end of the file into idx,
// applying Python's read_index rules: a torn header is cut off; a
// transaction running past the end of the file or left with status 'c' is
// cut off with its bytes saved to Data.fs.trN (read-write), or ends the
// data (read-only); damage inside the data fails with a *RecordError.
// On success it installs idx, the committed end and the last tid.
func (s *FileStorage) scan(idx *Index, pos int64, ltid zodb.Tid, size int64) error {
	r := newWindowReader(s.file, size)
	last := ltid
	var tindex []indexEntry
	for pos < size {
		h, stop, err := s.scanTxnHeader(r, pos, size, &ltid)
		if err != nil {
			return err
		}
		if stop {
			break
		}
		if h.Status != 'u' {
			tindex, err = s.scanRecords(r, &h, idx, tindex[:0])
			if err != nil {
				return err
			}
		}
		if err := checkTrailer(r, s.path, &h); err != nil {
			return err
		}
		for _, e := range tindex {
			idx.Set(e.oid, e.pos)
		}
		tindex = tindex[:0]
		s.txnmap.Add(h.Tid, h.Pos)
		last, pos = h.Tid, h.Next()
	}
	s.index, s.end, s.lastTid = idx, pos, last
	s.wend, s.wlast = pos, last
	if m, ok := idx.MaxOid(); ok {
		s.oid = m
	}
	return nil
}

// indexEntry is one oid → position pair of a transaction being scanned.
type indexEntry struct {
	oid zodb.Oid
	pos int64
}

// scanTxnHeader reads the transaction header at pos and decides, per
// Python's rules, whether the data end there (stop). It cuts the file in
// read-write mode where Python does.
func (s *FileStorage) scanTxnHeader(r io.ReaderAt, pos, size int64, ltid *zodb.Tid) (TxnHeader, bool, error) {
	if size-pos < TxnHeaderSize {
		if !s.readOnly {
			s.log.Warn("torn transaction header at the end of the file, truncating", logKeyPos, pos, "size", size)
			return TxnHeader{}, true, s.truncate(pos, false)
		}
		return TxnHeader{}, true, nil
	}
	var b [TxnHeaderSize]byte
	if _, err := r.ReadAt(b[:], pos); err != nil {
		return TxnHeader{}, false, &RecordError{Path: s.path, Record: "transaction", Pos: pos, Err: err}
	}
	h, _ := DecodeTxnHeader(b[:], pos)
	if h.Tid <= *ltid {
		s.log.Warn("time-stamp reduction", logKeyPos, pos, logKeyTid, h.Tid, "previous", *ltid)
	}
	*ltid = h.Tid
	if h.Len < 0 || h.Len > size || pos+h.Len+TrailerSize > size || h.Status == zodb.StatusCheckpoint {
		return s.cutTail(h, "unfinished or truncated transaction at the end of the file")
	}
	if h.Status != ' ' && h.Status != 'p' && h.Status != 'u' {
		s.log.Warn("transaction has an invalid status", logKeyPos, pos, "status", string(rune(h.Status)))
	}
	if h.Len < h.HeaderLen() {
		return s.shortTxn(r, h, size)
	}
	return h, false, nil
}

// cutTail stops the scan at h: in read-write mode the bytes from h on are
// saved to Data.fs.trN and cut off.
//
// Like Python, new tids will go past the tid of a cut voted ('c')
// transaction, so a tid saved in Data.fs.trN is not reused; unlike Python,
// the tid of a torn or garbage header is not trusted for that.
func (s *FileStorage) cutTail(h TxnHeader, why string) (TxnHeader, bool, error) {
	if h.Status == zodb.StatusCheckpoint && h.Tid <= zodb.MaxTid {
		s.seenTid = max(s.seenTid, h.Tid)
	}
	if s.readOnly {
		return h, true, nil
	}
	s.log.Warn(why+", truncating", logKeyPos, h.Pos, logKeyTid, h.Tid, "status", string(rune(h.Status)))
	return h, true, s.truncate(h.Pos, true)
}

// shortTxn handles a transaction length shorter than its header: garbage
// at the end of the file is cut off, otherwise the file is corrupted.
func (s *FileStorage) shortTxn(r io.ReaderAt, h TxnHeader, size int64) (TxnHeader, bool, error) {
	var b [TrailerSize]byte
	if _, err := r.ReadAt(b[:], size-TrailerSize); err != nil {
		return h, false, &RecordError{Path: s.path, Record: "transaction", Pos: h.Pos, Err: err}
	}
	rtl := binary.BigEndian.Uint64(b[:])
	if rtl > uint64(size) || size-int64(rtl) < h.Pos || rtl < TxnHeaderSize {
		s.log.Error("invalid transaction header", logKeyPos, h.Pos)
		return s.cutTail(h, "invalid data at the end of the file")
	}
	return h, false, &RecordError{Path: s.path, Record: "transaction", Pos: h.Pos,
		Err: corrupt("transaction length %d shorter than its header %d", h.Len, h.HeaderLen())}
}

// scanRecords checks the data records of h and appends their index
// entries to tindex. prev pointers that disagree with idx are logged only.
func (s *FileStorage) scanRecords(r io.ReaderAt, h *TxnHeader, idx *Index, tindex []indexEntry) ([]indexEntry, error) {
	for pos := h.DataPos(); pos < h.End(); {
		d, err := readScannedRecord(r, s.path, pos, h)
		if err != nil {
			return tindex, err
		}
		if cur, _ := idx.Get(d.Oid); cur != d.Prev {
			if d.Prev != 0 {
				s.log.Error("incorrect previous pointer", logKeyPos, pos, "oid", d.Oid, "prev", d.Prev, "index", cur)
			} else {
				s.log.Warn("incorrect previous pointer", logKeyPos, pos, "oid", d.Oid, "index", cur)
			}
		}
		tindex = append(tindex, indexEntry{d.Oid, pos})
		pos = d.Next()
	}
	return tindex, nil
}

// readScannedRecord reads a data record header at pos inside h with the
// checks of Python's read_index: inside the transaction, tloc pointing at
// it, no version.
func readScannedRecord(r io.ReaderAt, path string, pos int64, h *TxnHeader) (DataHeader, error) {
	fail := func(err error) (DataHeader, error) {
		return DataHeader{}, &RecordError{Path: path, Record: "data record", Pos: pos, Err: err}
	}
	if pos+DataHeaderSize > h.End() {
		return fail(corrupt("data record exceeds transaction record at %d", h.Pos))
	}
	var b [DataHeaderSize]byte
	if _, err := r.ReadAt(b[:], pos); err != nil {
		return fail(err)
	}
	d, _ := DecodeDataHeader(b[:], pos)
	switch {
	case d.PLen < 0 || d.PLen > h.Len || d.Next() > h.End():
		return fail(corrupt("data record exceeds transaction record at %d", h.Pos))
	case d.Tloc != h.Pos:
		return fail(corrupt("tloc %d does not point at its transaction %d", d.Tloc, h.Pos))
	case d.VLen != 0:
		return fail(corrupt("non-zero version length %d", d.VLen))
	}
	return d, nil
}

// checkTrailer checks the redundant length after transaction h.
func checkTrailer(r io.ReaderAt, path string, h *TxnHeader) error {
	var b [TrailerSize]byte
	if _, err := r.ReadAt(b[:], h.End()); err != nil {
		return &RecordError{Path: path, Record: "transaction", Pos: h.Pos, Err: err}
	}
	if t := int64(binary.BigEndian.Uint64(b[:])); t != h.Len {
		return &RecordError{Path: path, Record: "transaction", Pos: h.Pos,
			Err: corrupt("redundant transaction length %d does not match %d", t, h.Len)}
	}
	return nil
}

// truncate cuts Data.fs at pos, first copying the bytes from pos on to the
// first unused Data.fs.trN when save is set.
//
// Durability: the .trN file and its directory entry are fsynced before the
// cut, and Data.fs after.
func (s *FileStorage) truncate(pos int64, save bool) error {
	if save {
		if err := s.saveTail(pos); err != nil {
			return err
		}
	}
	if err := s.file.Truncate(pos); err != nil {
		return fmt.Errorf("%s: truncating at %d: %w", s.path, pos, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", s.path, err)
	}
	s.txnmap.TruncateFrom(pos)
	return nil
}

// saveTail copies Data.fs from pos to its end into the first unused
// Data.fs.trN. A copy that fails is removed: an open retried after each
// failure (a service manager restarting zrs on a full disk) would
// otherwise leave a partial .trN each time, eating the space freed for
// the one that succeeds, and looking like saved transactions.
func (s *FileStorage) saveTail(pos int64) error {
	for n := 0; ; n++ {
		name := s.path + ".tr" + strconv.Itoa(n)
		out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("saving truncated data: %w", err)
		}
		var size int64
		if fi, err := s.file.Stat(); err == nil {
			size = fi.Size()
		}
		s.log.Warn("moving the end of the file aside: an unfinished commit, never acknowledged, if the server crashed or lost "+
			"its disk; if it did not, this is damage: stop, run zrs fs verify on a copy of the file as it was (Data.fs up to "+
			"here, then this file), and compare with a replica before accepting writes",
			logKeyFile, name, logKeyPos, pos, "bytes", size-pos)
		_, err = io.Copy(out, io.NewSectionReader(s.file, pos, 1<<62))
		if err == nil {
			err = syncFile(out)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			// The name too, before the cut that makes the copy the only
			// one.
			err = syncDir(filepath.Dir(name))
		}
		if err != nil {
			if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				s.log.Warn("cannot remove a partial copy of truncated data", logKeyFile, name, "err", rerr)
			}
			tail := "the bytes"
			if st, serr := s.file.Stat(); serr == nil {
				tail = strconv.FormatInt(st.Size()-pos, 10) + " bytes"
			}
			return fmt.Errorf("saving truncated data (%s from offset %d) to %s: %w", tail, pos, name, err)
		}
		return nil
	}
}

// windowReader serves small reads of a sequential scan from a 1 MiB window
// of the file, so scanning headers costs one read per MiB, not per record.
type windowReader struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

const windowSize = 1 << 20

func newWindowReader(r io.ReaderAt, size int64) *windowReader {
	return &windowReader{r: r, size: size, off: -1}
}

// ReadAt reads len(p) bytes at off, from the window when it holds them.
func (w *windowReader) ReadAt(p []byte, off int64) (int, error) {
	if w.off >= 0 && off >= w.off && off+int64(len(p)) <= w.off+int64(len(w.buf)) {
		return copy(p, w.buf[off-w.off:]), nil
	}
	if len(p) >= windowSize/2 {
		return w.r.ReadAt(p, off)
	}
	if w.buf == nil {
		w.buf = make([]byte, windowSize)
	}
	n := int64(windowSize)
	if rest := w.size - off; rest < n {
		n = max(rest, 0)
	}
	w.buf = w.buf[:cap(w.buf)][:n]
	got, err := w.r.ReadAt(w.buf, off)
	w.buf, w.off = w.buf[:got], off
	if got < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return copy(p, w.buf), err
	}
	return copy(p, w.buf), nil
}
