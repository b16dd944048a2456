package zrsproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zrs-replication/zrs/internal/frame"
)

// ReadFrame reads one frame: a big-endian uint32 length and that many bytes
// of payload. A limit > 0 rejects longer frames before reading their
// payload (error wrapping ErrFrameTooLarge and ErrProtocol); 0 means no
// limit beyond the 4 GiB the length field allows.
//
// At a clean end of stream (no byte of a new frame read) it returns io.EOF;
// a stream cut inside a frame gives io.ErrUnexpectedEOF. An empty frame
// gives an empty, non-nil payload. Memory grows with the bytes received,
// never with the declared length alone.
func ReadFrame(r io.Reader, limit uint32) ([]byte, error) {
	p, err := frame.Read(r, uint64(limit))
	var te *frame.TooLargeError
	if errors.As(err, &te) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d: %w", ErrFrameTooLarge, te.N, te.Limit, ErrProtocol)
	}
	return p, err
}

// WriteFrame writes payload as one frame. Small frames go out in a single
// Write; large ones as the header then the payload (on the wire this is the
// same byte sequence).
func WriteFrame(w io.Writer, payload []byte) error {
	return writeFrame(w, payload, nil)
}

// writeFrame is WriteFrame assembling small frames in scratch (which may be
// nil); it returns nothing of scratch, callers keep their own.
func writeFrame(w io.Writer, payload []byte, scratch *[]byte) error {
	if uint64(len(payload)) > 0xffffffff {
		return fmt.Errorf("frame of %d bytes exceeds the 4 GiB protocol limit", len(payload))
	}
	if len(payload) <= 4096 {
		var b []byte
		if scratch != nil {
			b = (*scratch)[:0]
		} else {
			b = make([]byte, 0, 4+len(payload))
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
		b = append(b, payload...)
		if scratch != nil {
			*scratch = b
		}
		_, err := w.Write(b)
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}
