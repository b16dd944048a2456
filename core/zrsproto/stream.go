package zrsproto

import (
	"errors"
	"fmt"
	"io"

	"github.com/zrs-replication/zrs/core/zodb"
)

// StreamWriter writes the primary's side of a replication connection:
// for each transaction T, then S and DATA per record, then C with the
// running checksum. It resolves nothing itself: records must carry their
// data already resolved through backpointers (as core/fs iterators yield
// them), with DataTxn as the backpointer hint. Blob records are not
// written (no B messages). A StreamWriter is not safe for concurrent use;
// after an error the connection must be dropped.
type StreamWriter struct {
	w       io.Writer
	sum     *Checksum
	frames  int64
	scratch []byte // small frames are assembled here
}

// NewStreamWriter returns a writer for a connection whose handshake named
// start; the checksum is seeded with it.
func NewStreamWriter(w io.Writer, start zodb.Tid) *StreamWriter {
	return &StreamWriter{w: w, sum: NewChecksum(start)}
}

// newStreamWriter is NewStreamWriter with a given checksum.
func newStreamWriter(w io.Writer, sum *Checksum) *StreamWriter {
	return &StreamWriter{w: w, sum: sum}
}

// Frames returns how many frames have been written.
func (sw *StreamWriter) Frames() int64 { return sw.frames }

// WriteTxn writes one transaction. A record with nil Data goes out as an
// empty DATA frame (Python's None: a deletion or an undone creation).
// Errors are *FrameError values naming the frame.
func (sw *StreamWriter) WriteTxn(info *zodb.TxnInfo) error {
	t, err := EncodeControl(&TxnBegin{Tid: info.Tid, Status: info.Status,
		User: info.User, Description: info.Description, Extension: info.Extension})
	if err != nil {
		return &FrameError{Frame: sw.frames + 1, Kind: "T", Err: err}
	}
	if err := sw.frame("T", t); err != nil {
		return err
	}
	for i := range info.Records {
		r := &info.Records[i]
		s, err := EncodeControl(&Store{Oid: r.Oid, Tid: r.Tid, DataTxn: r.DataTxn})
		if err != nil {
			return &FrameError{Frame: sw.frames + 1, Kind: "S", Err: err}
		}
		if err := sw.frame("S", s); err != nil {
			return err
		}
		if err := sw.frame("DATA", r.Data); err != nil {
			return err
		}
	}
	c, err := EncodeControl(&Commit{Checksum: sw.sum.Sum()})
	if err != nil {
		return &FrameError{Frame: sw.frames + 1, Kind: "C", Err: err}
	}
	return sw.frame("C", c)
}

func (sw *StreamWriter) frame(kind string, payload []byte) error {
	sw.frames++
	sw.sum.Add(payload)
	if err := writeFrame(sw.w, payload, &sw.scratch); err != nil {
		return &FrameError{Frame: sw.frames, Kind: kind, Err: err}
	}
	return nil
}

// StreamReader reads the secondary's side of a replication connection
// and returns whole, checksum-verified transactions. Not safe for
// concurrent use. After an error every later call returns the same error:
// the connection must be dropped and the secondary resume from its last
// committed tid.
type StreamReader struct {
	// FrameLimit, if non-zero, rejects frames longer than this many bytes.
	// zc.zrs has no limit; memory grows only with bytes actually received.
	FrameLimit uint32

	r      io.Reader
	sum    *Checksum
	frames int64
	err    error
}

// NewStreamReader returns a reader for a connection whose handshake named
// start; the checksum is seeded with it.
func NewStreamReader(r io.Reader, start zodb.Tid) *StreamReader {
	return &StreamReader{r: r, sum: NewChecksum(start)}
}

// newStreamReader is NewStreamReader with a given checksum.
func newStreamReader(r io.Reader, sum *Checksum) *StreamReader {
	return &StreamReader{r: r, sum: sum}
}

// Frames returns how many frames have been read.
func (sr *StreamReader) Frames() int64 { return sr.frames }

// ReadTxn reads one transaction: T, then S + DATA pairs, then C, whose
// digest must match the checksum of everything before it. It returns
// io.EOF if the stream ends cleanly between transactions. The TxnInfo
// has Pos -1; each record's Data is nil for an empty DATA frame.
//
// Errors are *FrameError values wrapping: ErrChecksum (digest mismatch or
// a legacy commit without one), ErrBlobsUnsupported (a B record),
// ErrProtocol (bad pickle, unexpected message, T inside a transaction,
// frame over FrameLimit), io.ErrUnexpectedEOF (stream cut inside a
// transaction), or the reader's own error.
func (sr *StreamReader) ReadTxn() (*zodb.TxnInfo, error) {
	if sr.err != nil {
		return nil, sr.err
	}
	info, err := sr.readTxn()
	if err != nil {
		sr.err = err
	}
	return info, err
}

func (sr *StreamReader) readTxn() (*zodb.TxnInfo, error) {
	m, err := sr.control("T", true)
	if err != nil {
		return nil, err
	}
	t, ok := m.(TxnBegin)
	if !ok {
		return nil, sr.fail("T", protoErrorf("expected T, got %s", letterOf(m)))
	}
	info := &zodb.TxnInfo{Tid: t.Tid, Status: t.Status, Pos: -1,
		TxnMeta: zodb.TxnMeta{User: t.User, Description: t.Description, Extension: t.Extension}}
	for {
		m, err := sr.control("S or C", false)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case Store:
			data, err := sr.read("DATA")
			if err != nil {
				return nil, err
			}
			if len(data) == 0 {
				data = nil
			}
			info.Records = append(info.Records, zodb.DataRecord{Oid: m.Oid, Tid: m.Tid, Data: data, DataTxn: m.DataTxn})
		case Commit:
			return info, nil
		case StoreBlob:
			return nil, sr.fail("B", fmt.Errorf("oid %v: %w", m.Oid, ErrBlobsUnsupported))
		case TxnBegin:
			return nil, sr.fail("T", protoErrorf("T %v inside transaction %v", m.Tid, info.Tid))
		}
	}
}

// control reads and decodes one control message. A commit's checksum is
// verified against the state before its own payload is added.
func (sr *StreamReader) control(kind string, first bool) (any, error) {
	n := sr.frames + 1
	p, err := ReadFrame(sr.r, sr.FrameLimit)
	if err != nil {
		if first && err == io.EOF {
			return nil, io.EOF
		}
		return nil, sr.readErr(n, kind, err)
	}
	sr.frames = n
	m, err := DecodeControl(p)
	if err != nil {
		return nil, sr.fail(kind, err)
	}
	if c, ok := m.(Commit); ok {
		if c.Legacy {
			return nil, sr.fail("C", fmt.Errorf("%w: commit without a checksum (pre-2008 primary)", ErrChecksum))
		}
		if want := sr.sum.Sum(); c.Checksum != want {
			return nil, sr.fail("C", fmt.Errorf("%w: primary sent %x, stream gives %x", ErrChecksum, c.Checksum, want))
		}
	}
	sr.sum.Add(p)
	return m, nil
}

func (sr *StreamReader) read(kind string) ([]byte, error) {
	n := sr.frames + 1
	p, err := ReadFrame(sr.r, sr.FrameLimit)
	if err != nil {
		return nil, sr.readErr(n, kind, err)
	}
	sr.frames = n
	sr.sum.Add(p)
	return p, nil
}

func (sr *StreamReader) readErr(n int64, kind string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &FrameError{Frame: n, Kind: kind, Err: err}
}

func (sr *StreamReader) fail(kind string, err error) error {
	return &FrameError{Frame: sr.frames, Kind: kind, Err: err}
}

func letterOf(m any) string {
	switch m.(type) {
	case TxnBegin:
		return "T"
	case Store:
		return "S"
	case StoreBlob:
		return "B"
	case Commit:
		return "C"
	}
	return "?"
}
