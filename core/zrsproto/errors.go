package zrsproto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; a *FrameError
// wraps them and says which frame of the connection was at fault.
var (
	// ErrProtocol: the peer sent something the zrs2.x protocol does not
	// allow (an undecodable or unknown control message, a message out of
	// order, a field of the wrong type or length, a bad handshake).
	ErrProtocol = errors.New("zrs protocol error")
	// ErrChecksum: a commit message's MD5 digest does not match the
	// running checksum of the stream, or a commit carries no digest.
	ErrChecksum = errors.New("zrs stream checksum mismatch")
	// ErrBlobsUnsupported: the primary sent a blob record ('B'), which
	// this implementation cannot store yet.
	ErrBlobsUnsupported = errors.New("blob records are not supported")
	// ErrFrameTooLarge: a frame's declared length exceeds the reader's
	// limit. Errors carrying it also wrap ErrProtocol.
	ErrFrameTooLarge = errors.New("frame too large")
)

// FrameError says where in a connection's stream a problem was found.
// Frames are numbered from 1 in the order they were read or written on
// one connection (for a StreamReader: the primary-to-secondary frames; for
// ReadHandshake: 1 is the protocol name, 2 the start tid).
type FrameError struct {
	Frame int64  // 1-based frame number on the connection
	Kind  string // what the frame was expected to be: "T", "S", "DATA", "C", "protocol name", ...
	Err   error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("zrs frame %d (%s): %v", e.Frame, e.Kind, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// protoErrorf returns an error wrapping ErrProtocol.
func protoErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// protoError wraps err (from pyval, say) in ErrProtocol.
func protoError(err error) error {
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}
