// Package frame reads the length-prefixed frames both wire protocols of
// zrs use (zc.zrs replication and ZEO): a big-endian uint32 length, then
// that many bytes. core/zrsproto and core/zeo wrap it with their own
// limits and errors.
package frame

import (
	"encoding/binary"
	"errors"
	"io"
)

// readChunk is the most Read allocates ahead of the bytes it has actually
// received, so a peer that declares a huge frame and then sends nothing
// cannot make us allocate it.
const readChunk = 64 << 10

// TooLargeError: a frame's declared length is above the reader's limit.
type TooLargeError struct{ N, Limit uint64 }

func (e *TooLargeError) Error() string { return "frame too large" }

// Read reads one frame. A limit > 0 refuses longer frames with a
// *TooLargeError before reading their payload.
//
// At a clean end of stream (no byte of a new frame read) it returns io.EOF;
// a stream cut inside a frame gives io.ErrUnexpectedEOF. An empty frame
// gives an empty, non-nil payload. Memory grows with the bytes received,
// never with the declared length alone.
func Read(r io.Reader, limit uint64) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if limit > 0 && n > limit {
		return nil, &TooLargeError{N: n, Limit: limit}
	}
	size := int(n)
	buf := make([]byte, 0, min(size, readChunk))
	for len(buf) < size {
		step := min(size-len(buf), max(len(buf), readChunk))
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[len(buf)-step:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}
