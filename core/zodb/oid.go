package zodb

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Oid identifies a persistent object. On disk and on the wire it is 8
// big-endian bytes; oid 0 is the database root.
type Oid uint64

// RootOid is the oid of the root object (a PersistentMapping).
const RootOid Oid = 0

// Bytes returns the 8-byte big-endian form used on disk and on the wire.
func (o Oid) Bytes() [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(o))
	return b
}

// String returns the oid as 16 lowercase hex digits, the form zrs logs and
// dumps use.
func (o Oid) String() string { return fmt.Sprintf("%016x", uint64(o)) }

// OidFromBytes decodes an 8-byte big-endian oid. It returns an error if b is
// not exactly 8 bytes long.
func OidFromBytes(b []byte) (Oid, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("oid must be 8 bytes, got %d", len(b))
	}
	return Oid(binary.BigEndian.Uint64(b)), nil
}

// ParseOid parses 16 (or fewer) hex digits, with or without a 0x prefix.
func ParseOid(s string) (Oid, error) {
	v, err := parseHex64(s)
	return Oid(v), err
}

func parseHex64(s string) (uint64, error) {
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	if s == "" || len(s) > 16 {
		return 0, fmt.Errorf("%q: want 1 to 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not hex", s)
	}
	return v, nil
}
