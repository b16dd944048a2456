package zrsproto

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/cespare/xxhash/v2"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Stream checksums. zc.zrs (zrs2.0/2.1) uses MD5. A native (zrs3)
// secondary may offer ChecksumXXH64 in its hello: the same chain, hashed
// with xxHash64 — four times faster than MD5 here, which otherwise takes
// a quarter of a catch-up's CPU at each end. Its 16-byte sum is the
// 8-byte digest followed by the 8-byte count of bytes hashed. It guards
// against corruption and framing errors, as MD5 does here; neither is a
// defence against an attacker on the path (use TLS for that).
const (
	ChecksumMD5   = "md5"
	ChecksumXXH64 = "xxh64"
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
	h   hash.Hash
	xxh bool
	n   uint64 // bytes added (xxh64 sums include it)
}

// NewChecksum returns an MD5 checksum seeded with start.
func NewChecksum(start zodb.Tid) *Checksum {
	c, _ := NewChecksumOf(ChecksumMD5, start)
	return c
}

// NewChecksumOf returns a checksum of the given kind ("" means MD5)
// seeded with start.
func NewChecksumOf(kind string, start zodb.Tid) (*Checksum, error) {
	var c *Checksum
	switch kind {
	case "", ChecksumMD5:
		c = &Checksum{h: md5.New()}
	case ChecksumXXH64:
		c = &Checksum{h: xxhash.New(), xxh: true}
	default:
		return nil, fmt.Errorf("unknown stream checksum %q", kind)
	}
	b := start.Bytes()
	c.Add(b[:])
	return c, nil
}

// Add adds one frame's payload.
func (c *Checksum) Add(payload []byte) {
	c.h.Write(payload)
	c.n += uint64(len(payload))
}

// Sum returns the digest of everything added so far; it does not change
// the state.
func (c *Checksum) Sum() [16]byte {
	var d [16]byte
	if c.xxh {
		c.h.Sum(d[:0])
		binary.BigEndian.PutUint64(d[8:], c.n)
		return d
	}
	c.h.Sum(d[:0])
	return d
}
