package zrsproto

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Proto3 is the native protocol's name, sent in place of "zrs2.0" as the
// first handshake frame. A zc.zrs primary logs it as an invalid protocol
// and closes the connection without sending anything: a secondary that
// sees that falls back to Proto20.
const Proto3 = "zrs3"

// NativeVersion is the version of the hello messages this package writes.
const NativeVersion = 1

// HelloLimit caps the hello frames of the native handshake in both
// directions.
const HelloLimit = 64 << 10

// AckLimit caps the frames a primary accepts from a native secondary after
// the handshake: acknowledgements (9 bytes) and empty keep-alives.
const AckLimit = 9

// CompressionZstd names zstd compression of the primary-to-secondary
// stream in the hellos.
const CompressionZstd = "zstd"

// Hello is the native secondary's third handshake frame, after the
// protocol name and the start tid: who it is and where it stands.
type Hello struct {
	Version int `json:"version"`
	// Database is the identity of the secondary's database, zero when the
	// secondary is empty (it adopts the primary's).
	Database Identity `json:"database"`
	// Position describes the secondary's last transaction (the start tid
	// of the handshake); nil when the secondary is empty.
	Position *Position `json:"position,omitempty"`
	// Compression lists the stream compressions the secondary accepts, in
	// order of preference.
	Compression []string `json:"compression,omitempty"`
	// Acks: the secondary will send an acknowledgement frame after each
	// transaction it has durably applied.
	Acks bool `json:"acks"`
	// Checksums lists the stream checksums the secondary accepts besides
	// MD5, in order of preference (ChecksumXXH64).
	Checksums []string `json:"checksums,omitempty"`
	// Node names the secondary node, the same on each of its connections
	// (and, from a daemon, across its restarts): a primary counts the
	// acknowledgements of one node once, however many connections it has
	// (an old one may not be known dead yet). Empty: every connection is
	// a node of its own.
	Node string `json:"node,omitempty"`
	// Oids: the secondary reads heartbeats that carry the primary's oid
	// reservation (Heartbeat.Oids).
	Oids bool `json:"oids,omitempty"`
}

// Welcome is the native primary's answer to a Hello: either a refusal
// (Refused non-empty, and the connection closes after it) or the terms of
// the stream that follows.
type Welcome struct {
	Version int `json:"version"`
	// Refused, when not empty, says why the primary will not serve this
	// secondary, in words meant for an operator.
	Refused string `json:"refused,omitempty"`
	// Database is the primary's identity (zero when it is empty).
	Database Identity `json:"database"`
	// Last is the primary's last committed tid when it answered.
	Last zodb.Tid `json:"last,string"`
	// Compression is the compression of the rest of the stream, "" for
	// none.
	Compression string `json:"compression,omitempty"`
	// Checksum is the stream checksum, "" for MD5 (zc.zrs's).
	Checksum string `json:"checksum,omitempty"`
	// HeartbeatMillis is the primary's heartbeat interval: when idle it
	// sends a heartbeat at least this often.
	HeartbeatMillis int64 `json:"heartbeat_ms"`
	// Oids: the stream's heartbeats carry the primary's oid reservation
	// (the secondary offered it).
	Oids bool `json:"oids,omitempty"`
}

// Identity identifies a database by its first transaction: its tid and a
// digest of its metadata (user, description, extension). Copies and
// replicas of a file share it; two databases started independently do
// not. Pack does not change it as long as it keeps the first
// transaction's header. The zero Identity means "empty database".
type Identity struct {
	First zodb.Tid
	Sum   [16]byte
}

// IsZero reports whether id is the identity of an empty database.
func (id Identity) IsZero() bool { return id == Identity{} }

// String is "<first tid hex>-<digest hex>", or "" for the zero Identity.
func (id Identity) String() string {
	if id.IsZero() {
		return ""
	}
	return id.First.Hex() + "-" + hex.EncodeToString(id.Sum[:])
}

// MarshalText encodes String.
func (id Identity) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes what MarshalText wrote.
func (id *Identity) UnmarshalText(b []byte) error {
	*id = Identity{}
	if len(b) == 0 {
		return nil
	}
	tidHex, sumHex, ok := strings.Cut(string(b), "-")
	if !ok || len(tidHex) != 16 || len(sumHex) != 32 {
		return protoErrorf("bad database identity %q", b)
	}
	t, err := zodb.ParseTid(tidHex)
	if err != nil {
		return protoErrorf("bad database identity %q: %v", b, err)
	}
	if _, err := hex.Decode(id.Sum[:], []byte(sumHex)); err != nil {
		return protoErrorf("bad database identity %q: %v", b, err)
	}
	id.First = t
	return nil
}

// Position describes the transaction at a tid: a digest of its full
// logical content and one of its metadata only (TxnDigests).
type Position struct {
	Tid  zodb.Tid `json:"tid,string"`
	Full Digest   `json:"full"`
	Meta Digest   `json:"meta"`
}

// Digest is a SHA-256 digest, hex in JSON.
type Digest [32]byte

// MarshalText encodes d in hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText decodes 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return protoErrorf("bad digest %q: want 64 hex digits", b)
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return protoErrorf("bad digest %q: %v", b, err)
	}
	return nil
}

// EncodeHello encodes h as a hello frame payload (JSON).
func EncodeHello(h *Hello) ([]byte, error) { return json.Marshal(h) }

// DecodeHello decodes a hello frame payload. Unknown fields are ignored
// (a later version may add some); a version below 1 is refused.
func DecodeHello(p []byte) (*Hello, error) {
	var h Hello
	if err := decodeJSON(p, &h, "hello"); err != nil {
		return nil, err
	}
	if h.Version < 1 {
		return nil, protoErrorf("hello: version %d", h.Version)
	}
	if h.Position != nil && h.Position.Tid == 0 {
		return nil, protoErrorf("hello: position with tid 0")
	}
	return &h, nil
}

// EncodeWelcome encodes w as a welcome frame payload (JSON).
func EncodeWelcome(w *Welcome) ([]byte, error) { return json.Marshal(w) }

// DecodeWelcome decodes a welcome frame payload. A refusal decodes
// without error: the caller reports w.Refused.
func DecodeWelcome(p []byte) (*Welcome, error) {
	var w Welcome
	if err := decodeJSON(p, &w, "welcome"); err != nil {
		return nil, err
	}
	if w.Version < 1 {
		return nil, protoErrorf("welcome: version %d", w.Version)
	}
	if w.Refused == "" {
		if w.Compression != "" && w.Compression != CompressionZstd {
			return nil, protoErrorf("welcome: unknown compression %q", w.Compression)
		}
		if w.Checksum != "" && w.Checksum != ChecksumMD5 && w.Checksum != ChecksumXXH64 {
			return nil, protoErrorf("welcome: unknown stream checksum %q", w.Checksum)
		}
		if w.HeartbeatMillis < 0 {
			return nil, protoErrorf("welcome: negative heartbeat interval %d", w.HeartbeatMillis)
		}
	}
	return &w, nil
}

func decodeJSON(p []byte, v any, what string) error {
	if len(p) > HelloLimit {
		return protoErrorf("%s: %d bytes, limit %d", what, len(p), HelloLimit)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return protoErrorf("%s: %v", what, err)
	}
	return nil
}

// Native control frames. Both are fixed-size and start with a letter no
// pickle starts with, so a reader can tell them from a transaction's T
// at a transaction boundary.
const (
	heartbeatLetter  = 'H'
	heartbeatLen     = 1 + 8 + 8
	heartbeatOidsLen = heartbeatLen + 8
	ackLetter        = 'A'
	ackLen           = 1 + 8
)

// Heartbeat is sent by a native primary between transactions when it has
// nothing else to send for a heartbeat interval (and, on a stream whose
// terms carry oids, when its oid reservation grew): its last committed
// tid and its clock. It is not part of the stream checksum.
type Heartbeat struct {
	Last zodb.Tid
	Time time.Time
	// Oids is the greatest oid the primary may hand out to its clients as
	// a new oid before it sends a greater one (0: none); only heartbeats
	// of a stream with the Oids term carry it. A secondary records it, so
	// that as a primary it never hands those oids out again.
	Oids zodb.Oid
}

// EncodeHeartbeat returns the 17-byte payload 'H' + last tid + Unix time
// in nanoseconds (both big-endian). It leaves h.Oids out.
func EncodeHeartbeat(h Heartbeat) []byte {
	b := make([]byte, heartbeatLen, heartbeatOidsLen)
	b[0] = heartbeatLetter
	binary.BigEndian.PutUint64(b[1:], uint64(h.Last))
	binary.BigEndian.PutUint64(b[9:], uint64(h.Time.UnixNano()))
	return b
}

// EncodeHeartbeatOids returns the 25-byte payload of a stream with the
// Oids term: EncodeHeartbeat's, then h.Oids (big-endian).
func EncodeHeartbeatOids(h Heartbeat) []byte {
	return binary.BigEndian.AppendUint64(EncodeHeartbeat(h), uint64(h.Oids))
}

// DecodeHeartbeat decodes an EncodeHeartbeat or EncodeHeartbeatOids
// payload.
func DecodeHeartbeat(p []byte) (Heartbeat, error) {
	if len(p) != heartbeatLen && len(p) != heartbeatOidsLen || p[0] != heartbeatLetter {
		return Heartbeat{}, protoErrorf("not a heartbeat: %d bytes starting %q", len(p), firstByte(p))
	}
	h := Heartbeat{
		Last: zodb.Tid(binary.BigEndian.Uint64(p[1:])),
		Time: time.Unix(0, int64(binary.BigEndian.Uint64(p[9:]))),
	}
	if len(p) == heartbeatOidsLen {
		h.Oids = zodb.Oid(binary.BigEndian.Uint64(p[17:]))
	}
	return h, nil
}

// EncodeAck returns the 9-byte acknowledgement payload 'A' + tid: the
// secondary has applied and fsynced every transaction up to tid.
func EncodeAck(tid zodb.Tid) []byte {
	b := make([]byte, ackLen)
	b[0] = ackLetter
	binary.BigEndian.PutUint64(b[1:], uint64(tid))
	return b
}

// DecodeAck decodes an EncodeAck payload.
func DecodeAck(p []byte) (zodb.Tid, error) {
	if len(p) != ackLen || p[0] != ackLetter {
		return 0, protoErrorf("not an acknowledgement: %d bytes starting %q", len(p), firstByte(p))
	}
	return zodb.Tid(binary.BigEndian.Uint64(p[1:])), nil
}

func firstByte(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return string(p[:1])
}

// WriteNativeHandshake sends a native secondary's three opening frames:
// Proto3, the start tid, and the hello.
func WriteNativeHandshake(w io.Writer, start zodb.Tid, h *Hello) error {
	if err := WriteHandshake(w, Proto3, start); err != nil {
		return err
	}
	p, err := EncodeHello(h)
	if err != nil {
		return &FrameError{Frame: 3, Kind: "hello", Err: err}
	}
	if err := WriteFrame(w, p); err != nil {
		return &FrameError{Frame: 3, Kind: "hello", Err: err}
	}
	return nil
}

// ReadHello reads the hello frame that follows a Proto3 handshake.
func ReadHello(r io.Reader) (*Hello, error) {
	p, err := ReadFrame(r, HelloLimit)
	if err == nil {
		var h *Hello
		if h, err = DecodeHello(p); err == nil {
			return h, nil
		}
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, &FrameError{Frame: 3, Kind: "hello", Err: err}
}

// WriteWelcome sends the primary's answer to a hello.
func WriteWelcome(w io.Writer, wel *Welcome) error {
	p, err := EncodeWelcome(wel)
	if err == nil {
		err = WriteFrame(w, p)
	}
	if err != nil {
		return &FrameError{Frame: 1, Kind: "welcome", Err: err}
	}
	return nil
}

// ReadWelcome reads the primary's answer to a hello. A primary that
// closes the connection without answering gives io.EOF unwrapped: a
// zc.zrs primary does that on "zrs3".
func ReadWelcome(r io.Reader) (*Welcome, error) {
	p, err := ReadFrame(r, HelloLimit)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err == nil {
		var w *Welcome
		if w, err = DecodeWelcome(p); err == nil {
			return w, nil
		}
	}
	return nil, &FrameError{Frame: 1, Kind: "welcome", Err: err}
}

// String describes a refusal or the terms, for logs.
func (w *Welcome) String() string {
	if w.Refused != "" {
		return "refused: " + w.Refused
	}
	return fmt.Sprintf("database %s, last %s, compression %q, checksum %q, heartbeat %dms, oids %v", w.Database, w.Last, w.Compression, w.Checksum, w.HeartbeatMillis, w.Oids)
}
