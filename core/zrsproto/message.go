package zrsproto

import (
	"encoding/binary"
	"fmt"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// TxnBegin is the 'T' message: the start of one transaction.
type TxnBegin struct {
	Tid    zodb.Tid
	Status zodb.TxnStatus // ' ' or 'p'; sent as a one-character text
	// User and Description are the raw bytes of the transaction header.
	User, Description []byte
	// Extension is the extension as a FileStorage stores it: empty, or a
	// protocol-3 pickle of a dict as Python ZODB writes it. On the wire the
	// message carries the dict itself; EncodeControl unpickles these bytes
	// and DecodeControl pickles the received dict again (an empty dict
	// becomes empty bytes, as in ZODB).
	Extension []byte
}

// Store is the 'S' message: the header of one data record. The next frame
// holds the record's data (empty for none).
type Store struct {
	Oid zodb.Oid
	Tid zodb.Tid // the record's serial
	// DataTxn is the transaction the record's data was copied from (undo),
	// a hint to write a backpointer; 0 is sent as None.
	DataTxn zodb.Tid
}

// StoreBlob is the 'B' message: a Store whose record is a blob; the data
// frame is followed by Blocks raw frames of the blob file (64 KiB each,
// the last possibly shorter).
type StoreBlob struct {
	Store
	Blocks int64
}

// Commit is the 'C' message: the end of a transaction, carrying the
// stream checksum taken before this message (see Checksum).
type Commit struct {
	Checksum [16]byte
	// Legacy marks ('C', ()): the form sent by zc.zrs primaries older
	// than September 2008, with no checksum.
	Legacy bool
}

// maxControl bounds the control messages EncodeControl produces: a T with
// the largest header fields FileStorage allows is well below it.
const maxControl = 4 << 20

// EncodeControl pickles a control message (TxnBegin, Store, StoreBlob or
// Commit, or a pointer to one) the way a Python 3 zc.zrs primary does:
// protocol 1, fast mode, bytes as _codecs.encode(..., 'latin1').
func EncodeControl(m any) ([]byte, error) {
	var msg *pyval.Value
	switch m := m.(type) {
	case TxnBegin:
		return EncodeControl(&m)
	case Store:
		return EncodeControl(&m)
	case StoreBlob:
		return EncodeControl(&m)
	case Commit:
		return EncodeControl(&m)
	case *TxnBegin:
		if !m.Status.Valid() {
			return nil, fmt.Errorf("encode T: invalid transaction status %q", byte(m.Status))
		}
		ext, err := extensionDict(m.Extension)
		if err != nil {
			return nil, fmt.Errorf("encode T %v: extension: %w", m.Tid, err)
		}
		tid := m.Tid.Bytes()
		msg = message("T", pyval.Bytes(tid[:]), pyval.Str(string(rune(m.Status))),
			pyval.Bytes(m.User), pyval.Bytes(m.Description), ext)
	case *Store:
		return appendStore(make([]byte, 0, 160), m), nil
	case *StoreBlob:
		if m.Blocks < 0 {
			return nil, fmt.Errorf("encode B: negative block count %d", m.Blocks)
		}
		msg = message("B", append(storeFields(&m.Store), pyval.Int(m.Blocks))...)
	case *Commit:
		if m.Legacy {
			msg = message("C")
		} else {
			msg = message("C", pyval.Bytes(m.Checksum[:]))
		}
	default:
		return nil, fmt.Errorf("encode: %T is not a zrs control message", m)
	}
	b, err := pyval.Pickle(msg, pyval.PickleOptions{Protocol: 1, Fast: true, Max: maxControl})
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

func message(letter string, fields ...*pyval.Value) *pyval.Value {
	return pyval.Tuple(pyval.Str(letter), pyval.Tuple(fields...))
}

func storeFields(m *Store) []*pyval.Value {
	oid, tid := m.Oid.Bytes(), m.Tid.Bytes()
	dtx := pyval.None()
	if m.DataTxn != 0 {
		b := m.DataTxn.Bytes()
		dtx = pyval.Bytes(b[:])
	}
	return []*pyval.Value{pyval.Bytes(oid[:]), pyval.Bytes(tid[:]), pyval.Str(""), dtx}
}

// DecodeControl decodes a control message pickled by a Python 2 or Python
// 3 primary (or by EncodeControl) and returns a TxnBegin, Store,
// StoreBlob or Commit value. Errors wrap ErrProtocol.
func DecodeControl(p []byte) (any, error) {
	if m, ok := decodeStoreFast(p); ok {
		return m, nil
	}
	// Objects: a T message's extension may hold them (a datetime, a set)
	// when the primary's file was written by an application using
	// FileStorage directly; the other fields' checks refuse them.
	v, err := pyval.UnpickleWith(p, pyval.UnpickleOptions{Objects: true})
	if err != nil {
		return nil, protoError(err)
	}
	pair := v.Items()
	if v.Kind() != pyval.KindTuple || len(pair) != 2 || pair[1].Kind() != pyval.KindTuple {
		return nil, protoErrorf("control message is not a (type, fields) pair")
	}
	letter, ok := pair[0].AsText()
	if !ok {
		return nil, protoErrorf("message type is a %v", pair[0].Kind())
	}
	f := pair[1].Items()
	switch letter {
	case "T":
		return decodeTxnBegin(f)
	case "S":
		m, err := decodeStore(f, 4)
		if err != nil {
			return nil, err
		}
		return m, nil
	case "B":
		return decodeStoreBlob(f)
	case "C":
		return decodeCommit(f)
	}
	return nil, protoErrorf("invalid message type %q", letter)
}

func decodeTxnBegin(f []*pyval.Value) (any, error) {
	if len(f) != 5 {
		return nil, protoErrorf("T has %d fields, want 5", len(f))
	}
	var m TxnBegin
	var err error
	if m.Tid, err = tidField("T", "tid", f[0]); err != nil {
		return nil, err
	}
	status, ok := f[1].AsText()
	if !ok || len(status) != 1 || !zodb.TxnStatus(status[0]).Valid() {
		return nil, protoErrorf("T status: want ' ' or 'p', got %v", f[1])
	}
	m.Status = zodb.TxnStatus(status[0])
	if m.User, err = metaField("user", f[2]); err != nil {
		return nil, err
	}
	if m.Description, err = metaField("description", f[3]); err != nil {
		return nil, err
	}
	// A dict that contains itself cannot be sent on (T messages are
	// pickled in fast mode, without a memo, as zc.zrs pickles them, so no
	// real primary sends one), and shared objects must not expand past
	// what an extension can hold when written out.
	if _, ok := f[4].TreeSize(maxExtensionTree); !ok {
		return nil, protoErrorf("T extension contains itself, or its shared objects expand past %d bytes", maxExtensionTree)
	}
	if m.Extension, err = extensionBytes(f[4]); err != nil {
		return nil, err
	}
	return m, nil
}

// maxExtensionTree bounds a T extension written out as a tree
// (pyval.Value.TreeSize): a few times the most FileStorage stores.
const maxExtensionTree = 4 * pyval.MaxExtension

// strLike returns the bytes of text, bytes or a Python 2 str.
func strLike(v *pyval.Value) (string, bool) {
	if b, ok := v.AsBytes(); ok {
		return string(b), true
	}
	return v.AsText()
}

// metaField accepts bytes (and, leniently, text as its UTF-8 encoding).
func metaField(name string, v *pyval.Value) ([]byte, error) {
	s, ok := strLike(v)
	if !ok {
		return nil, protoErrorf("T %s is a %v", name, v.Kind())
	}
	if len(s) > zodb.MaxMetaLen {
		return nil, protoErrorf("T %s is %d bytes, more than FileStorage's %d", name, len(s), zodb.MaxMetaLen)
	}
	return []byte(s), nil
}

func tidField(msg, name string, v *pyval.Value) (zodb.Tid, error) {
	b, ok := v.AsBytes()
	if !ok || len(b) != 8 {
		return 0, protoErrorf("%s %s: want 8 bytes, got %v of length %d", msg, name, v.Kind(), v.Len())
	}
	return zodb.Tid(binary.BigEndian.Uint64(b)), nil
}

func decodeStore(f []*pyval.Value, n int) (Store, error) {
	var m Store
	if len(f) != n {
		return m, protoErrorf("store header has %d fields, want %d", len(f), n)
	}
	oid, err := tidField("S", "oid", f[0])
	if err != nil {
		return m, err
	}
	m.Oid = zodb.Oid(oid)
	if m.Tid, err = tidField("S", "tid", f[1]); err != nil {
		return m, err
	}
	if s, ok := strLike(f[2]); !ok || s != "" {
		return m, protoErrorf("S version: want empty, got %v", f[2])
	}
	if !f[3].IsNone() {
		if m.DataTxn, err = tidField("S", "data_txn", f[3]); err != nil {
			return m, err
		}
	}
	return m, nil
}

func decodeStoreBlob(f []*pyval.Value) (any, error) {
	s, err := decodeStore(f[:min(len(f), 4)], 4)
	if err != nil {
		return nil, err
	}
	if len(f) != 5 {
		return nil, protoErrorf("B has %d fields, want 5", len(f))
	}
	blocks, ok := f[4].AsInt()
	if f[4].Kind() != pyval.KindInt || !ok || blocks < 0 {
		return nil, protoErrorf("B blocks: want a non-negative int, got %v", f[4])
	}
	return StoreBlob{Store: s, Blocks: blocks}, nil
}

func decodeCommit(f []*pyval.Value) (any, error) {
	switch len(f) {
	case 0:
		return Commit{Legacy: true}, nil
	case 1:
		b, ok := f[0].AsBytes()
		if !ok || len(b) != 16 {
			return nil, protoErrorf("C checksum: want 16 bytes, got %v of length %d", f[0].Kind(), f[0].Len())
		}
		var m Commit
		copy(m.Checksum[:], b)
		return m, nil
	}
	return nil, protoErrorf("C has %d fields, want 0 or 1", len(f))
}
