package pyval

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// Kind is the Python type of a Value.
type Kind uint8

// The kinds of values. KindGlobal (a reference to a class or function)
// and KindObject (an instance, inert: nothing is imported or called)
// occur only when UnpickleWith was told to accept them (Classes,
// Objects); neither is plain data.
const (
	KindNone   Kind = iota
	KindBool        // b
	KindInt         // i
	KindBigInt      // big: an int outside the int64 range
	KindFloat       // f
	KindStr         // s: text, as UTF-8 bytes (lone surrogates allowed, as Python's surrogatepass)
	KindBytes       // s: bytes
	KindBinStr      // s: a Python 2 str (SHORT_BINSTRING/BINSTRING/STRING): bytes or text depending on use
	KindTuple       // items
	KindList        // items
	KindDict        // items: key0, value0, key1, value1, ... in insertion order
	KindGlobal      // s: "module\nname"
	KindObject      // s: "module\nname" of the class (or of the callable that made it); state: what BUILD set (nil if none); obj: how it was made
)

var kindNames = [...]string{"None", "bool", "int", "int", "float", "str", "bytes", "str (Python 2)",
	"tuple", "list", "dict", "global", "object"}

// String is the Python name of the kind, for error messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid kind"
}

// Value is one Python object. Pointers give object identity: two
// references to the same *Value are the same Python object (a memo GET in
// a decoded pickle, or a container referring to itself), which the
// protocol-3 memo encoder relies on. A Value is not safe for concurrent
// mutation; reading one from several goroutines is fine.
type Value struct {
	k     Kind
	b     bool
	i     int64
	big   *big.Int
	f     float64
	s     string
	items []*Value
	state *Value         // KindObject: the BUILD state
	obj   *object        // KindObject: how it was made, nil for NEWOBJ without arguments
	index map[string]int // dicts: canonical key → position in items
}

// object is how a KindObject was made, as its pickle said: by NEWOBJ
// (cls.__new__(cls, *args)) or by REDUCE (a callable called with args),
// then the list items (APPEND, APPENDS) and dict items (SETITEM,
// SETITEMS) the pickle added to it. Pickled again, an object is written
// the same way, which is what CPython writes for the object the original
// pickle made as long as its class reduces it to what made it (true of
// datetime, Decimal, set, OrderedDict, UUID and classes pickled by
// copyreg's default rules).
type object struct {
	reduce bool     // made by REDUCE; otherwise by NEWOBJ
	recon  bool     // NEWOBJ without arguments, read from copyreg._reconstructor(cls, object, None)
	args   *Value   // a tuple; nil for NEWOBJ's empty tuple
	list   []*Value // appended items
	dict   []*Value // set items: key, value, key, value, ...
}

// None returns Python's None.
func None() *Value { return &Value{k: KindNone} }

// Bool returns True or False.
func Bool(b bool) *Value { return &Value{k: KindBool, b: b} }

// Int returns an int.
func Int(i int64) *Value { return &Value{k: KindInt, i: i} }

// Uint returns an int: KindInt if u fits an int64, KindBigInt otherwise.
func Uint(u uint64) *Value {
	if u <= math.MaxInt64 {
		return Int(int64(u))
	}
	return &Value{k: KindBigInt, big: new(big.Int).SetUint64(u)}
}

// BigInt returns an int of any size (a copy of x): KindInt when it fits
// an int64, KindBigInt otherwise.
func BigInt(x *big.Int) *Value { return bigInt(new(big.Int).Set(x)) }

// bigInt is BigInt without the copy.
func bigInt(x *big.Int) *Value {
	if x.IsInt64() {
		return Int(x.Int64())
	}
	return &Value{k: KindBigInt, big: x}
}

// Float returns a float.
func Float(f float64) *Value { return &Value{k: KindFloat, f: f} }

// Str returns a Python str holding the text s (UTF-8).
func Str(s string) *Value { return &Value{k: KindStr, s: s} }

// Bytes returns a Python bytes object holding a copy of b.
func Bytes(b []byte) *Value { return &Value{k: KindBytes, s: string(b)} }

// Tuple returns a tuple of items.
func Tuple(items ...*Value) *Value { return &Value{k: KindTuple, items: items} }

// List returns a list of items.
func List(items ...*Value) *Value { return &Value{k: KindList, items: items} }

// Dict returns a dict of alternating keys and values, added in order with
// SetItem's rules. It panics on an odd count or an unhashable key: both are
// programming errors.
func Dict(kv ...*Value) *Value {
	if len(kv)%2 != 0 {
		panic("pyval.Dict: odd number of arguments")
	}
	d := &Value{k: KindDict}
	if err := d.setItems(kv); err != nil {
		panic("pyval.Dict: " + err.Error())
	}
	return d
}

// SetItem does d[k] = val for a dict: a key equal to an existing one (as
// Python compares dict keys: 1 == 1.0 == True) replaces that entry's value
// in place, any other key is appended. It panics if v is not a dict or k
// is not hashable (a list, a dict, a tuple holding one).
func (v *Value) SetItem(k, val *Value) {
	if v.k != KindDict {
		panic("pyval: SetItem on a " + v.k.String())
	}
	if err := v.setItems([]*Value{k, val}); err != nil {
		panic("pyval.SetItem: " + err.Error())
	}
}

// TrySetItem is SetItem returning an error instead of panicking when k
// is not hashable or its canonical form is too large (over 64 KiB): for
// decoders of untrusted input.
func (v *Value) TrySetItem(k, val *Value) error {
	if v.k != KindDict {
		return fmt.Errorf("set item on a %v", v.k)
	}
	return v.setItems([]*Value{k, val})
}

// Kind returns the Python type of v.
func (v *Value) Kind() Kind { return v.k }

// IsNone reports whether v is None.
func (v *Value) IsNone() bool { return v.k == KindNone }

// AsInt returns an int, or a bool as 0 or 1.
func (v *Value) AsInt() (int64, bool) {
	switch v.k {
	case KindInt:
		return v.i, true
	case KindBool:
		if v.b {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// AsUint returns a non-negative int that fits a uint64.
func (v *Value) AsUint() (uint64, bool) {
	switch v.k {
	case KindInt:
		if v.i >= 0 {
			return uint64(v.i), true
		}
	case KindBigInt:
		if v.big.Sign() >= 0 && v.big.IsUint64() {
			return v.big.Uint64(), true
		}
	}
	return 0, false
}

// AsBigInt returns any int (or bool) as a new big.Int.
func (v *Value) AsBigInt() (*big.Int, bool) {
	if v.k == KindBigInt {
		return new(big.Int).Set(v.big), true
	}
	if i, ok := v.AsInt(); ok {
		return big.NewInt(i), true
	}
	return nil, false
}

// AsBool returns a bool, an int's truth (non-zero) or None as false.
func (v *Value) AsBool() (bool, bool) {
	switch v.k {
	case KindBool:
		return v.b, true
	case KindInt:
		return v.i != 0, true
	case KindBigInt:
		return true, true // never zero: zero is a KindInt
	case KindNone:
		return false, true
	}
	return false, false
}

// AsFloat returns a float, or an int converted to float64 (rounded, as
// Python's float() does).
func (v *Value) AsFloat() (float64, bool) {
	switch v.k {
	case KindFloat:
		return v.f, true
	case KindInt:
		return float64(v.i), true
	case KindBigInt:
		f, _ := new(big.Float).SetInt(v.big).Float64()
		return f, true
	}
	return 0, false
}

// AsBytes returns the bytes of a bytes or Python 2 str value (a new slice).
func (v *Value) AsBytes() ([]byte, bool) {
	if v.k == KindBytes || v.k == KindBinStr {
		return []byte(v.s), true
	}
	return nil, false
}

// AsText returns a str or Python 2 str value as a Go string (for a str,
// its UTF-8 bytes).
func (v *Value) AsText() (string, bool) {
	if v.k == KindStr || v.k == KindBinStr {
		return v.s, true
	}
	return "", false
}

// Items returns the items of a tuple or list (not a copy: do not modify),
// nil for other kinds.
func (v *Value) Items() []*Value {
	if v.k == KindTuple || v.k == KindList {
		return v.items
	}
	return nil
}

// DictItems returns a dict's keys and values alternating, k0, v0, k1,
// v1, ..., in insertion order (not a copy: do not modify); nil for other
// kinds.
func (v *Value) DictItems() []*Value {
	if v.k == KindDict {
		return v.items
	}
	return nil
}

// Lookup returns the value of a dict's entry whose key is text (a str, or
// a Python 2 str) equal to key.
func (v *Value) Lookup(key string) (*Value, bool) {
	if v.k != KindDict {
		return nil, false
	}
	for i := 0; i+1 < len(v.items); i += 2 {
		if k, ok := v.items[i].AsText(); ok && k == key {
			return v.items[i+1], true
		}
	}
	return nil, false
}

// Len is the number of items of a tuple or list, of entries of a dict,
// and of bytes of a bytes value or of the UTF-8 form of a text; 0 for
// other kinds.
func (v *Value) Len() int {
	switch v.k {
	case KindTuple, KindList:
		return len(v.items)
	case KindDict:
		return len(v.items) / 2
	case KindStr, KindBytes, KindBinStr:
		return len(v.s)
	}
	return 0
}

// Class returns "module.name" of an object's class or of a global, "" for
// other kinds.
func (v *Value) Class() string {
	if v.k == KindObject || v.k == KindGlobal {
		return dotted(v.s)
	}
	return ""
}

// State returns what a pickle's BUILD set on an object (usually its
// attribute dict), nil if none or v is not an object.
func (v *Value) State() *Value {
	if v.k == KindObject {
		return v.state
	}
	return nil
}

// singletonKey returns a non-empty key when CPython would hand out one
// shared object for every occurrence of this value after unpickling: the
// empty string, one-character strings below U+0100, and bytes of length 0
// or 1. Those get memo GETs when pickled again even though the message
// that carried them never shared them.
func (v *Value) singletonKey() string {
	switch v.k {
	case KindStr:
		if v.s == "" {
			return "s"
		}
		if r, n := utf8.DecodeRuneInString(v.s); n == len(v.s) && r != utf8.RuneError && r < 0x100 {
			return "s" + v.s
		}
	case KindBytes:
		if len(v.s) <= 1 {
			return "b" + v.s
		}
	}
	return ""
}

// validPyUTF8 reports whether s is what CPython's "surrogatepass" UTF-8
// codec accepts: valid UTF-8, where encoded surrogates (ED A0..BF xx) are
// allowed too.
func validPyUTF8(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			if i+2 < len(s) && s[i] == 0xed && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && s[i+2] >= 0x80 && s[i+2] <= 0xbf {
				i += 3
				continue
			}
			return false
		}
		i += n
	}
	return true
}

// isASCII reports whether s has only bytes below 0x80.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TreeSize is the size of v written out as a tree, each shared object as
// many times as it is referenced: one per node plus the bytes of every
// string. It stops counting past limit and reports ok false then, and
// also when containers nest deeper than MaxDepth (so a value containing
// itself is never ok). Use it to bound what an encoder will produce for a
// value decoded from untrusted input, whose memo can share subtrees.
func (v *Value) TreeSize(limit int) (size int, ok bool) {
	size = v.treeSize(limit, 0)
	return size, size <= limit
}

func (v *Value) treeSize(limit, depth int) int {
	n := 1 + len(v.s)
	if v.big != nil {
		n += v.big.BitLen() / 8
	}
	if depth >= MaxDepth {
		return limit + 1
	}
	for _, it := range v.items {
		if n > limit {
			return n
		}
		n += it.treeSize(limit-n, depth+1)
	}
	for _, it := range v.parts() {
		if n > limit {
			return n
		}
		n += it.treeSize(limit-n, depth+1)
	}
	return n
}

// Plain reports whether v holds only plain data: no class, function or
// object anywhere inside (see UnpickleOptions.Objects).
func (v *Value) Plain() bool {
	return v.Walk(func(x *Value) error {
		if x.k == KindGlobal || x.k == KindObject {
			return errNotPlain
		}
		return nil
	}) == nil
}

var errNotPlain = errors.New("not plain data")

// PlainItems returns the entries of a dict whose key and value are both
// Plain, keys and values alternating in insertion order; nil for other
// kinds. (A transaction extension's items that ZEO clients can unpickle,
// and that every node pickles alike.)
func (v *Value) PlainItems() []*Value {
	var kv []*Value
	items := v.DictItems()
	for i := 0; i+1 < len(items); i += 2 {
		if k, x := items[i], items[i+1]; k.Plain() && x.Plain() {
			kv = append(kv, k, x)
		}
	}
	return kv
}

// Made describes how an object was made, for a caller that accepts only
// some shapes: by REDUCE (reduce true) or NEWOBJ, with args (a tuple), and
// whether the pickle added items or a BUILD state to it afterwards. ok is
// false for other kinds.
func (v *Value) Made() (reduce bool, args *Value, added bool, ok bool) {
	if v.k != KindObject {
		return false, nil, false, false
	}
	o := v.made()
	return o.reduce, o.args, len(o.list) > 0 || len(o.dict) > 0 || v.state != nil, true
}

// Walk calls fn on v and on everything inside it (items, an object's
// arguments, items and state), each node once, depth first, stopping at
// the first error fn returns or past MaxDepth.
func (v *Value) Walk(fn func(*Value) error) error {
	return v.walk(fn, make(map[*Value]bool), 0)
}

func (v *Value) walk(fn func(*Value) error, seen map[*Value]bool, depth int) error {
	if seen[v] {
		return nil
	}
	if depth > MaxDepth {
		return fmt.Errorf("nested deeper than %d", MaxDepth)
	}
	seen[v] = true
	if err := fn(v); err != nil {
		return err
	}
	for _, it := range v.items {
		if err := it.walk(fn, seen, depth+1); err != nil {
			return err
		}
	}
	for _, it := range v.parts() {
		if err := it.walk(fn, seen, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// emptyArgs is NEWOBJ's empty argument tuple.
var emptyArgs = &Value{k: KindTuple}

// made returns how an object was made, with NEWOBJ's empty arguments
// spelled out; the zero object for other kinds.
func (v *Value) made() object {
	if v.k != KindObject {
		return object{}
	}
	o := object{args: emptyArgs}
	if v.obj != nil {
		o = *v.obj
		if o.args == nil {
			o.args = emptyArgs
		}
	}
	return o
}

// parts returns what an object is made of besides its class: its
// arguments, added items and state (nil for other kinds).
func (v *Value) parts() []*Value {
	if v.k != KindObject {
		return nil
	}
	var ps []*Value
	if o := v.obj; o != nil {
		if o.args != nil {
			ps = append(ps, o.args)
		}
		ps = append(append(ps, o.list...), o.dict...)
	}
	if v.state != nil {
		ps = append(ps, v.state)
	}
	return ps
}
