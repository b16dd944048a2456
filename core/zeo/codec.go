package zeo

import (
	"fmt"
	"unicode/utf8"

	"github.com/zrs-replication/zrs/core/pyval"
)

// Flags of a message (the second tuple element).
type Flags int

// The flags ZEO 5 uses. A two-way call carries FlagReply (0) too: on the
// wire a client writes it as False, a server's reply as the int 0.
const (
	FlagReply   Flags = 0 // a reply, or a call that wants one
	FlagOneWay  Flags = 1 // a call without a reply
	FlagError   Flags = 2 // an error reply: Args is (qualname, payload)
	replyMethod       = ".reply"
)

// Message is one ZEO RPC message, (msgid, flags, name, args).
type Message struct {
	ID    *pyval.Value // echoed back verbatim in replies (int, or (oid, tid) tuple for loadBefore, -1 heartbeat)
	Flags Flags
	Name  string       // method name, ".reply" for replies
	Args  *pyval.Value // calls: a tuple; replies: the return value; errors: (qualname, payload); nil encodes as None
}

// Codec turns messages into frame payloads and back, in one of the two
// encodings a ZEO 5 connection can use. Both are safe for concurrent use.
type Codec interface {
	// Name is the handshake byte: "Z" (pickle) or "M" (msgpack).
	Name() string
	// Encode returns one frame payload. It writes what a Python ZEO 5
	// peer writes for the same message (see encodeFlags for the flags) and
	// fails, rather than send what a Python client could not decode, on
	// values the encoding cannot carry.
	Encode(m *Message) ([]byte, error)
	// Decode reads one frame payload, which must hold exactly one message.
	// Errors are *DecodeError values naming the byte offset; no input
	// panics. A message may build at most maxValues(len(p)) values (for
	// a pickle, marks and memo entries count too); past that the error
	// wraps pyval.ErrTooManyValues. Decoding so costs at most about 5
	// bytes per byte of p, plus about 600 KB (see maxValues).
	Decode(p []byte) (*Message, error)
}

// maxValues is how many values a message of n bytes may decode to: one
// per 32 bytes, plus 4096.
//
// Every decoded value costs about 100-150 bytes (a pyval.Value and its
// slots), however short its encoding: a None is one byte in either
// codec. Without a bound, one frame of Nones sent before register makes
// the server allocate over 100 times the frame (36 GiB for a 256 MiB
// frame); with it, about 150/32 ≈ 5 times, less than Python's 16.
//
// Real requests are far sparser. Their bulk is byte strings (storea's
// data: one value however long) and the rest has a fixed shape of fewer
// than 15 values (storea, loadBefore, vote, tpc_finish, iterator_start,
// iterator_next, checkCurrentSerialInTransaction, ...). Only three
// arguments vary in size, and each is a handful of entries in practice:
// tpc_begin's extension dict, undoInfo's specification and iterator_gc's
// list of iterator ids; 4096 values are room for an extension of 2000
// entries of any density. The densest messages of unbounded length go
// from the server to the client (invalidateTransaction's, new_oids' and
// getInvalidations' lists of oids, at 10 bytes each): a client decoding
// an invalidation of more than about 6000 objects with this codec would
// refuse it. The project's clients (tests, the load generator) commit
// fewer.
func maxValues(n int) int { return n/32 + 4096 }

// The two codecs.
var (
	PickleCodec  Codec = pickleCodec{}  // Z5: zodbpickle protocol 3, fast mode
	MsgpackCodec Codec = msgpackCodec{} // M5: msgpack, bin for bytes, arrays decoded as tuples
)

// CodecFor returns the codec a handshake byte selects: 'Z' or 'M'.
func CodecFor(b byte) (Codec, bool) {
	switch b {
	case 'Z':
		return PickleCodec, true
	case 'M':
		return MsgpackCodec, true
	}
	return nil, false
}

// DecodeError is a message that cannot be decoded.
type DecodeError struct {
	Codec  string // "Z" or "M"
	Offset int    // byte offset in the frame payload where decoding failed
	Err    error
}

func (e *DecodeError) Error() string {
	name := map[string]string{"Z": "pickle", "M": "msgpack"}[e.Codec]
	return fmt.Sprintf("undecodable %s message at byte %d: %v", name, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// messageValue is the 4-tuple a message travels as.
func messageValue(m *Message) (*pyval.Value, error) {
	if m.ID == nil {
		return nil, fmt.Errorf("encode %s: message without an id", m.Name)
	}
	args := m.Args
	if args == nil {
		args = pyval.None()
	}
	return pyval.Tuple(m.ID, encodeFlags(m), pyval.Str(m.Name), args), nil
}

// encodeFlags writes flags as Python ZEO peers do: the server writes the
// int 0 or 2 in replies and True in its one-way calls; the client writes
// False for a call that wants a reply and True for a one-way call.
func encodeFlags(m *Message) *pyval.Value {
	if m.Name != replyMethod && (m.Flags == FlagReply || m.Flags == FlagOneWay) {
		return pyval.Bool(m.Flags == FlagOneWay)
	}
	return pyval.Int(int64(m.Flags))
}

// decodeMessage checks the shape of a decoded 4-tuple. Errors are about
// the whole payload (offset 0).
func decodeMessage(v *pyval.Value) (*Message, error) {
	it := v.Items()
	if v.Kind() != pyval.KindTuple || len(it) != 4 {
		return nil, fmt.Errorf("message is %.60v, not a (msgid, flags, name, args) tuple", v)
	}
	m := &Message{ID: it[0], Args: it[3]}
	switch f := it[1]; f.Kind() {
	case pyval.KindBool:
		b, _ := f.AsBool()
		m.Flags = FlagReply
		if b {
			m.Flags = FlagOneWay
		}
	case pyval.KindInt:
		n, _ := f.AsInt()
		if n < 0 || n > int64(FlagError) {
			return nil, fmt.Errorf("message flags %d", n)
		}
		m.Flags = Flags(n)
	default:
		return nil, fmt.Errorf("message flags are %.40v", f)
	}
	name, ok := it[2].AsText()
	if !ok {
		b, isBytes := it[2].AsBytes()
		if !isBytes {
			return nil, fmt.Errorf("method name is %.60v", it[2])
		}
		name = string(b)
	}
	if !utf8.ValidString(name) {
		return nil, fmt.Errorf("method name %q is not UTF-8", name)
	}
	m.Name = name
	return m, nil
}
