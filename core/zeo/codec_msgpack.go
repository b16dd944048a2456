package zeo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/zrs-replication/zrs/core/pyval"
)

// msgpackCodec is ZEO's "M" encoding: Python's msgpack.packb(message,
// use_bin_type=True) and unpackb(raw=False, use_list=False). The mapping
// to Python values is done here with the library's low-level calls, so
// map order is kept and nothing is decoded through reflection:
//
//	bin → bytes, str → str (strict UTF-8), array → tuple, map → dict,
//	ints → int, float32/64 → float, nil → None, bool → bool.
//
// Encoding is the reverse, with lists written as arrays too. Ext types,
// map keys other than str and bytes (which msgpack ≥ 1.0 refuses to
// decode) and ints beyond 64 bits are errors.
type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "M" }

func (msgpackCodec) Encode(m *Message) ([]byte, error) {
	v, err := messageValue(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := encodeMsgpack(msgpack.NewEncoder(&buf), v, 0); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Name, err)
	}
	return checkPayload(m, buf.Bytes())
}

func encodeMsgpack(e *msgpack.Encoder, v *pyval.Value, depth int) error {
	if depth > pyval.MaxDepth {
		return fmt.Errorf("containers nested deeper than %d (or one contains itself)", pyval.MaxDepth)
	}
	switch v.Kind() {
	case pyval.KindNone:
		return e.EncodeNil()
	case pyval.KindBool:
		b, _ := v.AsBool()
		return e.EncodeBool(b)
	case pyval.KindInt, pyval.KindBigInt:
		if i, ok := v.AsInt(); ok {
			return e.EncodeInt(i)
		}
		if u, ok := v.AsUint(); ok {
			return e.EncodeUint(u)
		}
		return fmt.Errorf("int %.40v does not fit msgpack's 64 bits", v)
	case pyval.KindFloat:
		f, _ := v.AsFloat()
		return e.EncodeFloat64(f)
	case pyval.KindStr:
		s, _ := v.AsText()
		if !utf8.ValidString(s) {
			return fmt.Errorf("text %.40v is not valid UTF-8 (a lone surrogate?)", v)
		}
		return e.EncodeString(s)
	case pyval.KindBytes:
		b, _ := v.AsBytes()
		return e.EncodeBytes(append([]byte{}, b...)) // non-nil: nil would be written as nil
	case pyval.KindBinStr:
		// A Python 2 str, as ZODB reads it on Python 3: text if ASCII.
		b, _ := v.AsBytes()
		if isASCII(b) {
			return e.EncodeString(string(b))
		}
		return e.EncodeBytes(append([]byte{}, b...))
	case pyval.KindTuple, pyval.KindList:
		return encodeMsgpackArray(e, v.Items(), depth)
	case pyval.KindDict:
		return encodeMsgpackMap(e, v.DictItems(), depth)
	}
	return fmt.Errorf("msgpack cannot carry a %v", v.Kind())
}

func encodeMsgpackArray(e *msgpack.Encoder, items []*pyval.Value, depth int) error {
	if err := e.EncodeArrayLen(len(items)); err != nil {
		return err
	}
	for _, it := range items {
		if err := encodeMsgpack(e, it, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func encodeMsgpackMap(e *msgpack.Encoder, kv []*pyval.Value, depth int) error {
	if err := e.EncodeMapLen(len(kv) / 2); err != nil {
		return err
	}
	for i, it := range kv {
		if k := it.Kind(); i%2 == 0 && k != pyval.KindStr && k != pyval.KindBytes && k != pyval.KindBinStr {
			return fmt.Errorf("dict key %.40v: msgpack peers accept only str and bytes keys", it)
		}
		if err := encodeMsgpack(e, it, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func (msgpackCodec) Decode(p []byte) (*Message, error) {
	v, err := unpack(p)
	if err != nil {
		return nil, err
	}
	m, err := decodeMessage(v)
	if err != nil {
		return nil, &DecodeError{Codec: "M", Err: err}
	}
	return m, nil
}

// unpack decodes p, which must hold exactly one msgpack value. Errors are
// *DecodeError values.
func unpack(p []byte) (*pyval.Value, error) {
	r := bytes.NewReader(p)
	d := &mpDecoder{r: r, d: msgpack.NewDecoder(r), size: len(p), left: maxValues(len(p))}
	v, err := d.value(0)
	if err == nil && r.Len() > 0 {
		d.start, err = d.offset(), fmt.Errorf("%d bytes after the message", r.Len())
	}
	if err != nil {
		return nil, &DecodeError{Codec: "M", Offset: d.start, Err: err}
	}
	return v, nil
}

// mpDecoder reads values from one payload. The msgpack.Decoder reads the
// bytes.Reader directly (it is an io.ByteScanner, so no buffering), so the
// reader's position is the decoder's.
type mpDecoder struct {
	r     *bytes.Reader
	d     *msgpack.Decoder
	size  int
	start int // offset of the value being decoded, for errors
	left  int // values the message may still decode to (see maxValues)
}

// tooMany is the error for a message past its budget of values.
func (d *mpDecoder) tooMany() error {
	return fmt.Errorf("%w: more than %d values in %d bytes", pyval.ErrTooManyValues, maxValues(d.size), d.size)
}

func (d *mpDecoder) offset() int { return d.size - d.r.Len() }

func (d *mpDecoder) value(depth int) (*pyval.Value, error) {
	d.start = d.offset()
	if depth > pyval.MaxDepth {
		return nil, fmt.Errorf("containers nested deeper than %d", pyval.MaxDepth)
	}
	if d.left--; d.left < 0 {
		return nil, d.tooMany()
	}
	c, err := d.d.PeekCode()
	if err != nil {
		return nil, truncated(err)
	}
	v, err := d.decode(c, depth)
	return v, truncated(err)
}

func (d *mpDecoder) decode(c byte, depth int) (*pyval.Value, error) {
	switch {
	case c == msgpcode.Nil:
		return pyval.None(), d.d.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		b, err := d.d.DecodeBool()
		return pyval.Bool(b), err
	case msgpcode.IsFixedNum(c) || c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 ||
		c == msgpcode.Int64 || c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32:
		i, err := d.d.DecodeInt64()
		return pyval.Int(i), err
	case c == msgpcode.Uint64:
		u, err := d.d.DecodeUint64()
		return pyval.Uint(u), err
	case c == msgpcode.Float:
		f, err := d.d.DecodeFloat32()
		return pyval.Float(float64(f)), err
	case c == msgpcode.Double:
		f, err := d.d.DecodeFloat64()
		return pyval.Float(f), err
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		return d.str(c)
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return d.array(depth)
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return d.dict(depth)
	case msgpcode.IsExt(c):
		return nil, fmt.Errorf("msgpack ext type (code %#x) not supported", c)
	}
	return nil, fmt.Errorf("invalid msgpack code %#x", c)
}

// str reads str or bin, checking the declared length against the bytes
// left before allocating.
func (d *mpDecoder) str(c byte) (*pyval.Value, error) {
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > d.r.Len() {
		return nil, fmt.Errorf("length %d runs past the end (%d bytes left)", n, d.r.Len())
	}
	b := make([]byte, n)
	if err := d.d.ReadFull(b); err != nil {
		return nil, err
	}
	if msgpcode.IsString(c) {
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("str is not valid UTF-8")
		}
		return pyval.Str(string(b)), nil
	}
	return pyval.Bytes(b), nil
}

func (d *mpDecoder) array(depth int) (*pyval.Value, error) {
	n, err := d.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > d.r.Len() { // every item takes a byte at least
		return nil, fmt.Errorf("array of %d items, %d bytes left", n, d.r.Len())
	}
	if n > d.left { // checked before the slice is made
		return nil, d.tooMany()
	}
	items := make([]*pyval.Value, n)
	for i := range items {
		if items[i], err = d.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return pyval.Tuple(items...), nil
}

func (d *mpDecoder) dict(depth int) (*pyval.Value, error) {
	n, err := d.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > d.r.Len()/2 {
		return nil, fmt.Errorf("map of %d entries, %d bytes left", n, d.r.Len())
	}
	if n > d.left/2 {
		return nil, d.tooMany()
	}
	m := pyval.Dict()
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if k.Kind() != pyval.KindStr && k.Kind() != pyval.KindBytes {
			return nil, fmt.Errorf("map key is %.40v; only str and bytes keys are allowed", k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := m.TrySetItem(k, v); err != nil {
			return nil, fmt.Errorf("map key %.40v: %w", k, err)
		}
	}
	return m, nil
}

// truncated names running out of bytes in the middle of a value.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated message")
	}
	return err
}
