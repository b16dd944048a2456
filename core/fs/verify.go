package fs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/zrs-replication/zrs/core/zodb"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Progress, when set, is called with the offset reached and the file
	// size about every ProgressEvery bytes, and once at the end.
	Progress func(pos, size int64)
	// ProgressEvery is the progress interval in bytes; 0 means 64 MiB.
	ProgressEvery int64
	// MaxWarnings bounds the warnings kept in the report (all are
	// counted); 0 means 100.
	MaxWarnings int
	// Strict makes an unfinished last transaction (see
	// VerifyReport.Unfinished) a problem, as it is for Python's fstest.
	Strict bool
}

// VerifyReport summarises a file that Verify found sound.
type VerifyReport struct {
	Path              string
	Size              int64  // bytes
	Magic             string // "FS30" or "FS21"
	Txns              int64  // transactions, legacy 'u' ones included
	UndoneTxns        int64  // legacy 'u' transactions (not checked inside)
	Records           int64  // data records
	DataBytes         int64  // bytes of inline pickles
	Backpointers      int64  // records whose data lives in an earlier record
	Deletions         int64  // records with no data (deletion or undone creation)
	Oids              int    // distinct oids
	FirstTid, LastTid zodb.Tid
	Warnings          []VerifyWarning // the first MaxWarnings
	WarningCount      int64
	// Unfinished, when set, is the last transaction of the file, still
	// marked 'c' (voted, not finished) or not yet written whole: a commit
	// in progress on a live database, or a crash's leftover that the next
	// read-write open saves to Data.fs.trN and cuts off. It is not
	// checked, and not counted in Txns. Without Strict it is no problem.
	Unfinished *VerifyWarning
}

// VerifyWarning is an oddity that Python ZODB accepts and that does not
// make the file unreadable.
type VerifyWarning struct {
	Pos int64 // byte offset of the record concerned
	Msg string
}

func (w VerifyWarning) String() string { return fmt.Sprintf("offset %d: %s", w.Pos, w.Msg) }

// Verify reads the whole file at path and checks everything Python's
// fstest checks — non-empty, magic, complete headers, strictly increasing
// non-zero tids, lengths inside the file, no 'c' status ("checkpoint flag
// was not cleared"; in the last transaction only with Strict, see
// VerifyReport.Unfinished), status in ' pu', data records inside and exactly
// tiling their transaction with tloc pointing at it, trailer equal to the
// length — and more:
//
//   - every prev pointer equals the position of the oid's newest record
//     before the transaction (so several records of one oid in one
//     transaction all point before it), and that record has a smaller tid;
//   - every backpointer points at a record of the same oid in an earlier,
//     sound transaction;
//   - vlen is 0.
//
// A record tid different from its transaction's tid (written by restore
// in copies) and a prev of 0 for an oid seen before (written by pack) are
// warnings. The first problem is returned as a *RecordError with its
// offset; ctx cancels a long run.
func Verify(ctx context.Context, path string, opts VerifyOptions) (*VerifyReport, error) {
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return VerifyReader(ctx, f, path, fi.Size(), opts)
}

// VerifyReader is Verify on a file already open, of the given size.
func VerifyReader(ctx context.Context, r io.ReaderAt, path string, size int64, opts VerifyOptions) (*VerifyReport, error) {
	v := newVerifier(r, path, size, opts)
	if err := v.run(ctx); err != nil {
		return nil, err
	}
	return v.rep, nil
}

// verifier holds the state of one Verify run.
type verifier struct {
	r        io.ReaderAt
	path     string
	size     int64
	opts     VerifyOptions
	rep      *VerifyReport
	last     map[zodb.Oid]verifyRev // newest record of each oid before the current transaction
	txnRevs  map[zodb.Oid]verifyRev // records of the current transaction
	buf      []byte
	nextProg int64
}

// verifyRev is where a revision of an oid is, and its tid.
type verifyRev struct {
	pos int64
	tid zodb.Tid
}

func newVerifier(r io.ReaderAt, path string, size int64, opts VerifyOptions) *verifier {
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 64 << 20
	}
	if opts.MaxWarnings <= 0 {
		opts.MaxWarnings = 100
	}
	return &verifier{
		r: r, path: path, size: size, opts: opts,
		rep:  &VerifyReport{Path: path, Size: size},
		last: map[zodb.Oid]verifyRev{}, txnRevs: map[zodb.Oid]verifyRev{},
	}
}

func (v *verifier) fail(record string, pos int64, err error) error {
	return &RecordError{Path: v.path, Record: record, Pos: pos, Err: err}
}

func (v *verifier) warn(pos int64, format string, args ...any) {
	v.rep.WarningCount++
	if len(v.rep.Warnings) < v.opts.MaxWarnings {
		v.rep.Warnings = append(v.rep.Warnings, VerifyWarning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
}

func (v *verifier) run(ctx context.Context) error {
	if v.size == 0 {
		return v.fail("file header", 0, corrupt("empty file"))
	}
	if err := iterCheckMagic(v.r, v.path, v.size); err != nil {
		return err
	}
	var b [MagicSize]byte
	if _, err := v.r.ReadAt(b[:], 0); err != nil {
		return v.fail("file header", 0, err)
	}
	v.rep.Magic = string(b[:])
	v.nextProg = v.opts.ProgressEvery
	for pos := int64(MagicSize); pos < v.size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := v.txn(pos)
		if err != nil {
			// Only a transaction that fails its checks can be the
			// unfinished tail: its header is read again only then.
			if u := v.unfinishedTail(pos); u != nil {
				v.rep.Unfinished = u
				break
			}
			return err
		}
		pos = next
		v.progress(pos)
	}
	v.rep.Oids = len(v.last)
	if v.opts.Progress != nil {
		v.opts.Progress(v.size, v.size)
	}
	return nil
}

// unfinishedTail returns, unless Strict, a description of the
// transaction at pos if it is the file's last and unfinished: its status
// reads 'c' and it reaches to or past the end of the file, or too few of
// its header's bytes are there to read a status. That is what a live
// database shows while a commit is between vote and finish (ZODB writes
// the header with 'c' first), and what a crash leaves. A transaction with
// any other status that runs past the end is unfinished too when the file
// has grown since its size was taken and holds it whole now, its trailer
// in place (that commit finished while verify read what came before it);
// otherwise it is a truncated file or a damaged length: damage, which the
// ordinary checks report.
func (v *verifier) unfinishedTail(pos int64) *VerifyWarning {
	if v.opts.Strict {
		return nil
	}
	var buf [TxnHeaderSize]byte
	n, _ := v.r.ReadAt(buf[:min(int64(len(buf)), v.size-pos)], pos)
	if n <= 16 {
		return &VerifyWarning{Pos: pos, Msg: fmt.Sprintf("unfinished transaction at the end: %d bytes of its header", n)}
	}
	tlen := int64(binary.BigEndian.Uint64(buf[8:16]))
	if tlen < 0 || pos+tlen+TrailerSize < v.size {
		return nil
	}
	if buf[16] == byte(zodb.StatusCheckpoint) {
		return &VerifyWarning{Pos: pos, Msg: fmt.Sprintf("unfinished transaction at the end: status 'c', %d of %d bytes written",
			v.size-pos, tlen+TrailerSize)}
	}
	if pos+tlen+TrailerSize > v.size && v.grew() && v.wholeNow(pos, tlen) {
		// Finished by now, but not written whole when the size was
		// taken: a commit in progress then, on a live database.
		return &VerifyWarning{Pos: pos, Msg: fmt.Sprintf("unfinished transaction at the end: %d of %d bytes written when verify began (the file has grown since)",
			v.size-pos, tlen+TrailerSize)}
	}
	return nil
}

// wholeNow reports whether the transaction at pos, of length tlen, is
// there whole now, past the size verify took: its trailer repeats its
// length. A damaged length field would not find one.
func (v *verifier) wholeNow(pos, tlen int64) bool { return trailerIs(v.r, pos, tlen) }

// trailerIs reports whether the transaction at pos, of length tlen, ends
// in r with its trailer: its length repeated. A transaction still being
// written, or a damaged length, has none there.
func trailerIs(r io.ReaderAt, pos, tlen int64) bool {
	var b [TrailerSize]byte
	n, _ := r.ReadAt(b[:], pos+tlen)
	return n == TrailerSize && int64(binary.BigEndian.Uint64(b[:])) == tlen
}

// grew reports whether the file holds bytes past the size verify took:
// it is being written.
func (v *verifier) grew() bool {
	var b [1]byte
	n, _ := v.r.ReadAt(b[:], v.size)
	return n == 1
}

func (v *verifier) progress(pos int64) {
	if v.opts.Progress != nil && pos >= v.nextProg {
		v.opts.Progress(pos, v.size)
		v.nextProg = pos + v.opts.ProgressEvery
	}
}

// txn checks the transaction at pos and returns the offset of the next.
func (v *verifier) txn(pos int64) (int64, error) {
	h, err := v.header(pos)
	if err != nil {
		return 0, err
	}
	v.rep.Txns++
	if v.rep.FirstTid == 0 {
		v.rep.FirstTid = h.Tid
	}
	v.rep.LastTid = h.Tid
	if h.Status == 'u' {
		v.rep.UndoneTxns++
		return h.Next(), nil
	}
	if err := v.records(&h); err != nil {
		return 0, err
	}
	for oid, rev := range v.txnRevs {
		v.last[oid] = rev
	}
	clear(v.txnRevs)
	return h.Next(), nil
}

// header checks the transaction header at pos, its status, its tid against
// the previous one, and its trailer.
func (v *verifier) header(pos int64) (TxnHeader, error) {
	if pos+TxnHeaderSize > v.size {
		return TxnHeader{}, v.fail("transaction", pos, fmt.Errorf("%w: truncated header: %d bytes left", ErrTruncated, v.size-pos))
	}
	var buf [TxnHeaderSize]byte
	if _, err := v.r.ReadAt(buf[:], pos); err != nil {
		return TxnHeader{}, v.fail("transaction", pos, err)
	}
	raw, _ := DecodeTxnHeader(buf[:], pos)
	if raw.Tid <= v.rep.LastTid {
		return TxnHeader{}, v.fail("transaction", pos, corrupt("time-stamp reduction: %s <= %s", raw.Tid, v.rep.LastTid))
	}
	switch raw.Status {
	case zodb.StatusCommitted, zodb.StatusPacked, 'u':
	case zodb.StatusCheckpoint:
		return TxnHeader{}, v.fail("transaction", pos, corrupt("checkpoint flag was not cleared (status 'c': an unfinished commit)"))
	default:
		return TxnHeader{}, v.fail("transaction", pos, corrupt("invalid status %q", byte(raw.Status)))
	}
	return ReadTxnHeader(v.r, v.path, pos, v.size)
}

// records checks the data records of h.
func (v *verifier) records(h *TxnHeader) error {
	r := io.ReaderAt(v.r)
	if h.Len <= iterBufMax {
		if cap(v.buf) < int(h.Len) {
			v.buf = make([]byte, h.Len)
		}
		buf := v.buf[:h.Len]
		if _, err := v.r.ReadAt(buf, h.Pos); err != nil {
			return v.fail("transaction", h.Pos, err)
		}
		r = &iterWindowReader{r: v.r, base: h.Pos, buf: buf}
	}
	return iterDataRecords(r, v.path, h, func(d DataHeader) error {
		return v.record(r, h, &d)
	})
}

// record checks one data record d of h (its header is already checked by
// ReadDataHeader: inside h, tloc, vlen, prev before h).
func (v *verifier) record(r io.ReaderAt, h *TxnHeader, d *DataHeader) error {
	v.rep.Records++
	if d.Tid != h.Tid {
		v.warn(d.Pos, "record tid %s differs from its transaction's %s", d.Tid, h.Tid)
	}
	if err := v.prev(d); err != nil {
		return err
	}
	v.txnRevs[d.Oid] = verifyRev{pos: d.Pos, tid: d.Tid}
	if d.PLen > 0 {
		v.rep.DataBytes += d.PLen
		return nil
	}
	return v.backpointer(r, h, d)
}

// prev checks d's prev pointer against the oid's newest earlier record.
func (v *verifier) prev(d *DataHeader) error {
	want, seen := v.last[d.Oid]
	switch {
	case d.Prev == 0 && seen:
		v.warn(d.Pos, "prev is 0 but oid %s has a record at %d", d.Oid, want.pos)
	case d.Prev != 0 && !seen:
		return v.fail("data record", d.Pos, corrupt("prev %d but oid %s has no earlier record", d.Prev, d.Oid))
	case d.Prev != 0 && d.Prev != want.pos:
		return v.fail("data record", d.Pos, corrupt("prev %d, but oid %s's previous record is at %d", d.Prev, d.Oid, want.pos))
	case d.Prev != 0 && want.tid >= d.Tid:
		return v.fail("data record", d.Pos, corrupt("prev %d has tid %s, not before %s", d.Prev, want.tid, d.Tid))
	}
	return nil
}

// backpointer checks that a record without data points at a record of the
// same oid inside an earlier sound transaction, or is a deletion.
func (v *verifier) backpointer(r io.ReaderAt, h *TxnHeader, d *DataHeader) error {
	back, err := ReadBackpointer(r, v.path, d)
	if err != nil {
		return err
	}
	if back == 0 {
		v.rep.Deletions++
		return nil
	}
	v.rep.Backpointers++
	t, err := readBackTarget(v.r, v.path, back, d)
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return v.fail("backpointer", d.Pos, corrupt("backpointer %d: "+format, append([]any{back}, args...)...))
	}
	if t.Tid >= h.Tid {
		return bad("target tid %s not before %s", t.Tid, h.Tid)
	}
	th, err := ReadTxnHeader(v.r, v.path, t.Tloc, h.Pos)
	if err != nil {
		return bad("target's transaction at %d unreadable: %v", t.Tloc, err)
	}
	if back < th.DataPos() || t.PLen > th.End()-back-DataHeaderSize || t.PLen == 0 && back+DataHeaderSize+BackptrSize > th.End() {
		return bad("target is not inside its transaction at %d", th.Pos)
	}
	return nil
}
