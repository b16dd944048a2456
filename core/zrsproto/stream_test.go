package zrsproto

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/zrs-replication/zrs/core/zodb"
)

func readAll(t testing.TB, r io.Reader, start zodb.Tid) ([]*zodb.TxnInfo, error) {
	t.Helper()
	sr := NewStreamReader(r, start)
	var out []*zodb.TxnInfo
	for {
		info, err := sr.ReadTxn()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, info)
	}
}

// TestStreamVectors: reading Python's stream verifies every C (spec §2.7),
// and writing the transactions read gives Python's bytes back.
func TestStreamVectors(t *testing.T) {
	streams := readStreams(t)
	for _, name := range []string{"plain", "resume"} {
		s := streams[name]
		txns, err := readAll(t, iotest.OneByteReader(bytes.NewReader(s.wire())), s.start)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out bytes.Buffer
		sw := NewStreamWriter(&out, s.start)
		for _, info := range txns {
			if err := sw.WriteTxn(info); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), s.wire()) {
			t.Errorf("%s: rewritten stream differs from Python's", name)
		}
		if sw.Frames() != int64(len(s.frames)) {
			t.Errorf("%s: wrote %d frames, want %d", name, sw.Frames(), len(s.frames))
		}
	}
	txns, _ := readAll(t, bytes.NewReader(streams["plain"].wire()), 0)
	if len(txns) != 4 {
		t.Fatalf("read %d transactions, want 4", len(txns))
	}
	undo := txns[2].Records
	if undo[0].DataTxn != txns[1].Tid || undo[0].Data == nil || undo[1].Data != nil || undo[1].DataTxn != 0 {
		t.Errorf("undo records: %+v", undo)
	}
	if txns[3].Status != zodb.StatusPacked || len(txns[3].Records) != 0 || txns[1].Extension == nil || string(txns[1].User) != "/ alice" {
		t.Errorf("txns: %+v %+v", txns[1], txns[3])
	}
}

// TestStreamWrongStart: the same bytes checked against another seed fail
// at the first C, naming its frame.
func TestStreamWrongStart(t *testing.T) {
	s := readStreams(t)["plain"]
	_, err := readAll(t, bytes.NewReader(s.wire()), 1)
	var fe *FrameError
	if !errors.Is(err, ErrChecksum) || !errors.As(err, &fe) || fe.Frame != 4 || fe.Kind != "C" {
		t.Fatalf("err = %v", err)
	}
}

// TestStreamBlob: a B record is refused with ErrBlobsUnsupported after
// the transaction before it was delivered.
func TestStreamBlob(t *testing.T) {
	s := readStreams(t)["blob"]
	txns, err := readAll(t, bytes.NewReader(s.wire()), s.start)
	if len(txns) != 1 || !errors.Is(err, ErrBlobsUnsupported) {
		t.Fatalf("txns %d, err %v", len(txns), err)
	}
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Frame != 6 {
		t.Errorf("err = %v, want frame 6", err)
	}
}

// TestStreamEveryBitFlip: flipping any single bit of a stream is caught:
// ReadTxn returns an error or the stream ends early, never the same
// transactions with different content.
func TestStreamEveryBitFlip(t *testing.T) {
	s := readStreams(t)["resume"]
	wire := s.wire()
	for i := 0; i < len(wire)*8; i++ {
		b := append([]byte(nil), wire...)
		b[i/8] ^= 1 << (i % 8)
		txns, err := readAll(t, bytes.NewReader(b), s.start)
		if err == nil {
			t.Fatalf("bit %d (byte %d) flipped: accepted %d transactions", i, i/8, len(txns))
		}
	}
}

// TestStreamTruncated: a stream cut anywhere inside a transaction gives
// io.ErrUnexpectedEOF; cut between transactions it ends cleanly.
func TestStreamTruncated(t *testing.T) {
	s := readStreams(t)["plain"]
	wire := s.wire()
	boundaries := map[int]bool{0: true}
	off := 0
	for i, f := range s.frames {
		off += 4 + len(f)
		if s.labels[i] == "C" {
			boundaries[off] = true
		}
	}
	for n := 0; n < len(wire); n++ {
		_, err := readAll(t, bytes.NewReader(wire[:n]), s.start)
		if boundaries[n] {
			if err != nil {
				t.Errorf("cut at %d (between transactions): %v", n, err)
			}
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: err = %v", n, err)
		}
	}
}

// TestStreamOutOfOrder: messages in the wrong place are protocol errors.
func TestStreamOutOfOrder(t *testing.T) {
	enc := func(m any) []byte {
		b, err := EncodeControl(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tb := enc(TxnBegin{Tid: 5, Status: ' '})
	st := enc(Store{Oid: 1, Tid: 5})
	cases := map[string][][]byte{
		"S first": {st, nil},
		// Records with no T before them: refused as out of place at the
		// first S, not read on to the checksum.
		"S, S, data, C, no T": {st, st, []byte("\x80\x03N."), enc(Commit{Checksum: [16]byte{}})},
		"T inside T":          {tb, tb},
		"garbage":             {[]byte("garbage")},
		"raw data first":      {[]byte("\x80\x03N.")},
		"legacy commit":       {tb, enc(Commit{Legacy: true})},
	}
	for name, frames := range cases {
		var b bytes.Buffer
		for _, f := range frames {
			WriteFrame(&b, f)
		}
		_, err := readAll(t, &b, 0)
		want := ErrProtocol
		if name == "legacy commit" {
			want = ErrChecksum
		}
		var fe *FrameError
		if !errors.Is(err, want) || !errors.As(err, &fe) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestStreamFrameLimit: FrameLimit refuses a long frame before reading it.
func TestStreamFrameLimit(t *testing.T) {
	s := readStreams(t)["plain"]
	sr := NewStreamReader(bytes.NewReader(s.wire()), s.start)
	sr.FrameLimit = 32
	_, err := sr.ReadTxn()
	if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v", err)
	}
	if _, err2 := sr.ReadTxn(); err2 != err {
		t.Errorf("error not sticky: %v", err2)
	}
}

// TestStreamWriterErrors: a write failure names its frame; a bad status
// is refused before anything is written.
func TestStreamWriterErrors(t *testing.T) {
	sw := NewStreamWriter(&failWriter{after: 2}, 0)
	err := sw.WriteTxn(&zodb.TxnInfo{Tid: 1, Status: ' ', Records: []zodb.DataRecord{{Oid: 1, Tid: 1, Data: []byte("x")}}})
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Frame != 3 || fe.Kind != "DATA" {
		t.Errorf("err = %v", err)
	}
	var b bytes.Buffer
	if err := NewStreamWriter(&b, 0).WriteTxn(&zodb.TxnInfo{Tid: 1, Status: 'u'}); err == nil || b.Len() != 0 {
		t.Errorf("status u: err %v, %d bytes written", err, b.Len())
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errors.New("disk on fire")
	}
	w.after--
	return len(p), nil
}
