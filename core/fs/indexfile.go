package fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"

	ogórek "github.com/kisielk/og-rek"

	"github.com/zrs-replication/zrs/core/zodb"
)

// The Data.fs.index file, in the format Python ZODB has written since 3.10:
// a stream of separate pickles in one file,
//
//	pos                      an int: where the next transaction would start
//	(prefix, bucket)         zero or more 2-tuples, one per 6-byte oid prefix
//	None                     the terminator
//
// where bucket holds n entries as n 2-byte oid suffixes, strictly
// ascending, followed by the n positions as 6-byte big-endian integers.
// Python reads the buckets verbatim (no sorting) and asserts that none is
// empty, so the writer must sort and must skip empty buckets.

// indexTmpSuffix is appended to the index path to name the temp file, as
// Python does: Data.fs.index.index_tmp.
const indexTmpSuffix = ".index_tmp"

const (
	idxPrefixLen = 6 // bytes of an oid that name its bucket
	idxSuffixLen = 2 // bytes of an oid stored in the bucket
	idxPosLen    = 6 // bytes of a position stored in the bucket
	idxEntryLen  = idxSuffixLen + idxPosLen
)

// Errors that IndexFileError wraps. Whatever the error, a storage's answer
// is the same: ignore the file and rebuild the index by scanning Data.fs.
var (
	// ErrIndexFormat: the file is not a well-formed index.
	ErrIndexFormat = errors.New("malformed index file")
	// ErrIndexOldFormat: the file is in the format of ZODB before 3.10 (one
	// pickled dict), which zrs does not read.
	ErrIndexOldFormat = errors.New("old index format, will rebuild")
)

// IndexFileError reports an index file that cannot be read or written:
// which file, where in it, and what is wrong.
type IndexFileError struct {
	Path   string // the index file
	Offset int64  // byte offset of the pickle at fault; -1 if not about one pickle
	Err    error  // what is wrong; wraps ErrIndexFormat, ErrIndexOldFormat or an I/O error
}

func (e *IndexFileError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: pickle at offset %d: %v", e.Path, e.Offset, e.Err)
}

func (e *IndexFileError) Unwrap() error { return e.Err }

// badIndex builds an ErrIndexFormat-wrapping error text.
func badIndex(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIndexFormat, fmt.Sprintf(format, args...))
}

// ReadIndexFile reads a Data.fs.index file written by Python ZODB (3.10 or
// later, Python 2 or 3) or by WriteIndexFile, and returns the position it
// covers and the index. It checks the file's structure only; whether the
// index matches Data.fs is the caller's business.
//
// Errors are *IndexFileError; the file in the pre-3.10 format gives one
// wrapping ErrIndexOldFormat. Any error means: rebuild the index.
func ReadIndexFile(path string) (pos int64, idx *Index, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, &IndexFileError{Path: path, Offset: -1, Err: err}
	}
	defer f.Close()
	var hint int64
	if st, err := f.Stat(); err == nil {
		hint = st.Size()
	}
	return readIndex(f, path, hint)
}

// readIndex decodes an index stream; size, if known, sizes the map.
func readIndex(r io.Reader, path string, size int64) (int64, *Index, error) {
	ir := newIndexReader(r, path)
	pos, err := ir.readPos()
	if err != nil {
		return 0, nil, err
	}
	// A dense index takes 8 bytes of file per entry: size the map for that,
	// within reason, to spare its growth steps (half the allocation).
	idx := newIndexSize(int(min(max(size, 0)/idxEntryLen, 1<<22)))
	for {
		done, err := ir.readBucket(idx)
		if err != nil {
			return 0, nil, err
		}
		if done {
			return pos, idx, nil
		}
	}
}

// indexReader decodes the pickles of an index stream one by one and keeps
// track of where each starts, for error messages.
type indexReader struct {
	path     string
	cr       *countingReader
	br       *bufio.Reader
	dec      *ogórek.Decoder
	start    int64               // offset of the pickle last decoded
	prefixes map[uint64]struct{} // prefixes seen, to reject duplicates
}

func newIndexReader(r io.Reader, path string) *indexReader {
	cr := &countingReader{r: r}
	// og-rek wraps its reader in bufio.NewReader, which returns a
	// *bufio.Reader of at least the default size unchanged: so br.Buffered
	// tells how far the decoder really is.
	br := bufio.NewReaderSize(cr, 64<<10)
	dec := ogórek.NewDecoderWithConfig(br, &ogórek.DecoderConfig{StrictUnicode: true})
	return &indexReader{path: path, cr: cr, br: br, dec: dec, prefixes: map[uint64]struct{}{}}
}

// fail wraps err with the file and the offset of the current pickle.
func (ir *indexReader) fail(err error) error {
	return &IndexFileError{Path: ir.path, Offset: ir.start, Err: err}
}

// next decodes the next pickle. One og-rek decoder reads them all, like
// Python's one Unpickler: the memo is shared. Unlike Python, og-rek does
// not clear its stack between pickles, so a malformed pickle that leaves
// values behind could feed the next one; Python's writers never leave any,
// and a fresh decoder per pickle costs twice the time on sparse indexes.
func (ir *indexReader) next(what string) (any, error) {
	ir.start = ir.cr.n - int64(ir.br.Buffered())
	v, err := ir.dec.Decode()
	switch {
	case err == io.EOF:
		return nil, ir.fail(badIndex("file ends where %s should be", what))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, ir.fail(badIndex("truncated %s", what))
	case err != nil:
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return nil, ir.fail(err)
		}
		return nil, ir.fail(badIndex("%s: bad pickle: %v", what, err))
	}
	return v, nil
}

// readPos decodes the first pickle, the position the index covers.
func (ir *indexReader) readPos() (int64, error) {
	v, err := ir.next("the position (first pickle)")
	if err != nil {
		return 0, err
	}
	switch v.(type) {
	case map[any]any, ogórek.Dict:
		return 0, ir.fail(ErrIndexOldFormat)
	}
	pos, ok := pickleInt(v)
	if !ok {
		return 0, ir.fail(badIndex("first pickle is %s, want the position as an int", pyType(v)))
	}
	if pos < 0 {
		return 0, ir.fail(badIndex("negative position %d", pos))
	}
	return pos, nil
}

// readBucket decodes one (prefix, bucket) pickle into idx; done is true at
// the None terminator. Anything after the terminator is ignored, as Python
// does.
func (ir *indexReader) readBucket(idx *Index) (done bool, err error) {
	v, err := ir.next("a (prefix, bucket) pair or the None terminator")
	if err != nil {
		return false, err
	}
	if _, ok := v.(ogórek.None); ok {
		return true, nil
	}
	prefix, bucket, err := splitPair(v)
	if err != nil {
		return false, ir.fail(err)
	}
	if _, dup := ir.prefixes[prefix]; dup {
		return false, ir.fail(badIndex("second bucket for oid prefix %012x", prefix))
	}
	ir.prefixes[prefix] = struct{}{}
	if err := decodeBucket(idx, prefix, bucket); err != nil {
		return false, ir.fail(err)
	}
	return false, nil
}

// splitPair checks that v is a (prefix, bucket) tuple or list and returns
// the prefix as a number and the bucket's bytes.
func splitPair(v any) (prefix uint64, bucket string, err error) {
	var items []any
	switch t := v.(type) {
	case ogórek.Tuple:
		items = t
	case []any:
		items = t
	default:
		return 0, "", badIndex("entry is %s, want a (prefix, bucket) pair", pyType(v))
	}
	if len(items) != 2 {
		return 0, "", badIndex("entry has %d items, want a (prefix, bucket) pair", len(items))
	}
	p, ok := pickleBytes(items[0])
	if !ok || len(p) != idxPrefixLen {
		return 0, "", badIndex("oid prefix is %s, want %d bytes", pyDesc(items[0]), idxPrefixLen)
	}
	b, ok := pickleBytes(items[1])
	if !ok {
		return 0, "", badIndex("bucket for oid prefix %x is %s, want bytes", p, pyType(items[1]))
	}
	return be48(p), b, nil
}

// decodeBucket adds the entries of one bucket to idx.
func decodeBucket(idx *Index, prefix uint64, b string) error {
	if len(b)%idxEntryLen != 0 {
		return badIndex("bucket for oid prefix %012x is %d bytes long, not a multiple of %d",
			prefix, len(b), idxEntryLen)
	}
	n := len(b) / idxEntryLen
	suffixes, positions := b[:n*idxSuffixLen], b[n*idxSuffixLen:]
	prev := -1
	for i := range n {
		suffix := int(suffixes[2*i])<<8 | int(suffixes[2*i+1])
		if suffix <= prev {
			return badIndex("bucket for oid prefix %012x: oid suffixes not strictly ascending (%04x after %04x)",
				prefix, suffix, prev)
		}
		prev = suffix
		oid := zodb.Oid(prefix<<16 | uint64(suffix))
		idx.Set(oid, int64(be48(positions[i*idxPosLen:(i+1)*idxPosLen])))
	}
	return nil
}

// be48 decodes a 6-byte big-endian number.
func be48(s string) uint64 {
	var v uint64
	for i := range idxPosLen {
		v = v<<8 | uint64(s[i])
	}
	return v
}

// pickleInt accepts any pickled int (BININT*, INT, LONG, LONG1) that fits
// in an int64.
func pickleInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case *big.Int:
		if n != nil && n.IsInt64() {
			return n.Int64(), true
		}
	}
	return 0, false
}

// pickleBytes accepts Python 3 bytes, Python 2 str (whatever its bytes:
// Python 3 ZODB refuses non-ASCII ones, we need not), and unicode strings
// whose characters all fit in a byte (taken as Latin-1).
func pickleBytes(v any) (string, bool) {
	switch s := v.(type) {
	case ogórek.Bytes:
		return string(s), true
	case ogórek.ByteString:
		return string(s), true
	case string:
		return latin1(s)
	}
	return "", false
}

// latin1 encodes s as Latin-1, failing if a character is above U+00FF.
func latin1(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}

// pyType names the Python type of a decoded pickle value, for errors.
func pyType(v any) string {
	switch t := v.(type) {
	case nil, ogórek.None:
		return "None"
	case bool:
		return "a bool"
	case int64, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case ogórek.Bytes:
		return "bytes"
	case ogórek.ByteString, string:
		return "a str"
	case ogórek.Tuple:
		return fmt.Sprintf("a %d-tuple", len(t))
	case []any:
		return "a list"
	case map[any]any, ogórek.Dict:
		return "a dict"
	}
	return fmt.Sprintf("a %T", v)
}

// pyDesc is pyType plus the length of strings.
func pyDesc(v any) string {
	if s, ok := pickleBytes(v); ok {
		return fmt.Sprintf("%s of %d bytes", pyType(v), len(s))
	}
	return pyType(v)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// WriteIndexFile saves idx, covering Data.fs up to pos, to path in the
// format Python ZODB writes (pickle protocol 3, bytes as BINBYTES, no memo),
// so Python can open a Data.fs that zrs closed without rescanning it.
//
// Durability: the index is written to path+".index_tmp" (Python's temp
// name), that file is fsynced and renamed over path, then the directory is
// fsynced. When WriteIndexFile returns nil the new index is durable; after
// a crash at any point path holds either the old index or the new one,
// never a torn one (a stale temp file may remain; the next write replaces
// it). On error the temp file is removed and path is untouched.
//
// Errors are *IndexFileError: a negative pos, a position in idx that does
// not fit in the file's 48 bits, or an I/O error.
func WriteIndexFile(path string, pos int64, idx *Index) error {
	err := replaceFile(path, path+indexTmpSuffix, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 256<<10)
		if err := encodeIndex(w, pos, idx); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		return &IndexFileError{Path: path, Offset: -1, Err: err}
	}
	return nil
}

// replaceFile replaces path durably: write fills tmp, which is fsynced,
// closed and renamed over path, and the directory is fsynced. After a
// crash at any point path holds the old content or the new, never a torn
// one. On an error before the rename tmp is removed and path untouched.
func replaceFile(path, tmp string, write func(io.Writer) error) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, making a new name or a rename in it
// durable. A variable only so that a test can see which directory is
// synced, and when.
var syncDir = fsyncDir

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// encodeIndex writes the pickle stream of an index file to w.
//
// og-rek emits what Python writes byte for byte (BININT*, SHORT_BINBYTES /
// BINBYTES, TUPLE2, no memo), except for pos ≥ 2^31, which og-rek writes as
// the text INT opcode where Python writes LONG1; Python loads both as the
// same int, so og-rek is used rather than a hand-written emitter.
func encodeIndex(w io.Writer, pos int64, idx *Index) error {
	if pos < 0 {
		return fmt.Errorf("negative position %d", pos)
	}
	enc := ogórek.NewEncoderWithConfig(w, &ogórek.EncoderConfig{Protocol: 3})
	if err := enc.Encode(pos); err != nil {
		return err
	}
	var bucket bucketBuilder
	var err error
	idx.Range(func(oid zodb.Oid, p int64) bool {
		if p < 0 || p > MaxPos {
			err = fmt.Errorf("oid %s: position %d does not fit in the index file's 48 bits", oid, p)
			return false
		}
		if bucket.n > 0 && uint64(oid)>>16 != bucket.prefix {
			err = bucket.flush(enc)
		}
		bucket.add(oid, p)
		return err == nil
	})
	if err == nil {
		err = bucket.flush(enc)
	}
	if err != nil {
		return err
	}
	return enc.Encode(ogórek.None{})
}

// bucketBuilder accumulates the entries of one oid prefix, in ascending
// oid order.
type bucketBuilder struct {
	prefix    uint64
	n         int
	suffixes  []byte
	positions []byte
}

func (b *bucketBuilder) add(oid zodb.Oid, pos int64) {
	b.prefix = uint64(oid) >> 16
	b.n++
	b.suffixes = append(b.suffixes, byte(oid>>8), byte(oid))
	p := uint64(pos)
	b.positions = append(b.positions, byte(p>>40), byte(p>>32), byte(p>>24), byte(p>>16), byte(p>>8), byte(p))
}

// flush writes the bucket as one (prefix, bucket) pickle, if it is not
// empty, and empties it.
func (b *bucketBuilder) flush(enc *ogórek.Encoder) error {
	if b.n == 0 {
		return nil
	}
	p := b.prefix
	prefix := []byte{byte(p >> 40), byte(p >> 32), byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)}
	data := append(b.suffixes, b.positions...)
	err := enc.Encode(ogórek.Tuple{ogórek.Bytes(prefix), ogórek.Bytes(data)})
	b.n, b.suffixes, b.positions = 0, b.suffixes[:0], b.positions[:0]
	return err
}
