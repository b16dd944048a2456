package zrsproto

import (
	"crypto/md5"
	"hash"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Checksum is the running MD5 of one replication connection. Both ends seed
// it with the 8-byte start tid of the handshake and add the payload (never
// the length prefix) of every primary-to-secondary frame in order. A commit
// message carries Sum() taken before its own payload is added; after
// that the commit payload is added like any other frame.
//
// It protects the transport and framing from the reconnect point on; it
// cannot tell that two databases diverged, since the seed is the
// secondary's own position. A Checksum is not safe for concurrent use.
type Checksum struct {
	h hash.Hash
}

// NewChecksum returns a checksum seeded with start.
func NewChecksum(start zodb.Tid) *Checksum {
	c := &Checksum{h: md5.New()}
	b := start.Bytes()
	c.h.Write(b[:])
	return c
}

// Add adds one frame's payload.
func (c *Checksum) Add(payload []byte) { c.h.Write(payload) }

// Sum returns the digest of everything added so far; it does not change
// the state.
func (c *Checksum) Sum() [16]byte {
	var d [16]byte
	c.h.Sum(d[:0])
	return d
}
