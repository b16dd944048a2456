package zeo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zrs-replication/zrs/internal/frame"
)

// ErrFrameTooLarge: a frame's declared length exceeds the reader's limit.
var ErrFrameTooLarge = errors.New("zeo frame too large")

// ReadFrame reads one frame: a 4-byte big-endian length, then that many
// bytes of payload. A length above limit is an error wrapping
// ErrFrameTooLarge, returned before any of the payload is read (limit <= 0
// allows the 4 GiB the length field can say).
//
// At a clean end of stream (no byte of a new frame read) it returns io.EOF;
// a stream cut inside a frame gives io.ErrUnexpectedEOF. An empty frame
// gives an empty, non-nil payload. Memory grows with the bytes received,
// never with the declared length alone.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	p, err := frame.Read(r, uint64(max(limit, 0)))
	var te *frame.TooLargeError
	if errors.As(err, &te) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, te.N, te.Limit)
	}
	return p, err
}

// AppendFrame appends payload to dst as one frame and returns the result.
// It panics if payload is 4 GiB or more, which the length field cannot
// say; the codecs refuse to produce such payloads.
func AppendFrame(dst, payload []byte) []byte {
	if uint64(len(payload)) > maxPayload {
		panic("zeo: frame payload of 4 GiB or more")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// maxPayload is the longest payload a frame can carry.
const maxPayload = 1<<32 - 1

// checkPayload refuses an encoded message no frame can carry.
func checkPayload(m *Message, b []byte) ([]byte, error) {
	if uint64(len(b)) > maxPayload {
		return nil, fmt.Errorf("encode %s: %d bytes, more than a frame can carry", m.Name, len(b))
	}
	return b, nil
}
