package zrsproto

import (
	"encoding/binary"
	"io"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Protocol names a secondary announces in the first handshake frame.
const (
	// Proto20: the secondary cannot store blobs.
	Proto20 = "zrs2.0"
	// Proto21: the secondary can store blobs (B records).
	Proto21 = "zrs2.1"
)

// HandshakeLimit is the largest frame a primary accepts from a secondary:
// the handshake frames (6 and 8 bytes) and the empty keep-alives.
const HandshakeLimit = 8

// WriteHandshake sends the secondary's two opening frames: the protocol
// name and the start tid (its last committed transaction, 0 for "send
// everything").
func WriteHandshake(w io.Writer, proto string, start zodb.Tid) error {
	if err := WriteFrame(w, []byte(proto)); err != nil {
		return &FrameError{Frame: 1, Kind: "protocol name", Err: err}
	}
	b := start.Bytes()
	if err := WriteFrame(w, b[:]); err != nil {
		return &FrameError{Frame: 2, Kind: "start tid", Err: err}
	}
	return nil
}

// ReadHandshake reads a secondary's two opening frames, refusing any frame
// longer than HandshakeLimit bytes. The protocol must be Proto20 or Proto21
// and the start tid exactly 8 bytes; otherwise the error (a *FrameError
// wrapping ErrProtocol) comes with whatever protocol name was read, so the
// caller can log it. Whether a zrs2.0 peer is acceptable (it cannot take
// blobs) is the caller's decision.
func ReadHandshake(r io.Reader) (proto string, start zodb.Tid, err error) {
	return readHandshake(r, false)
}

// ReadAnyHandshake is ReadHandshake accepting Proto3 too: a native
// secondary's hello frame (ReadHello) follows.
func ReadAnyHandshake(r io.Reader) (proto string, start zodb.Tid, err error) {
	return readHandshake(r, true)
}

func readHandshake(r io.Reader, native bool) (proto string, start zodb.Tid, err error) {
	p, err := ReadFrame(r, HandshakeLimit)
	if err != nil {
		return "", 0, &FrameError{Frame: 1, Kind: "protocol name", Err: err}
	}
	proto = string(p)
	if proto != Proto20 && proto != Proto21 && (!native || proto != Proto3) {
		return proto, 0, &FrameError{Frame: 1, Kind: "protocol name", Err: protoErrorf("invalid protocol %q", p)}
	}
	t, err := ReadFrame(r, HandshakeLimit)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return proto, 0, &FrameError{Frame: 2, Kind: "start tid", Err: err}
	}
	if len(t) != 8 {
		return proto, 0, &FrameError{Frame: 2, Kind: "start tid", Err: protoErrorf("invalid transaction id %x: want 8 bytes, got %d", t, len(t))}
	}
	return proto, zodb.Tid(binary.BigEndian.Uint64(t)), nil
}
