package pyval

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a pickle that cannot be decoded.
type Error struct {
	Pos int   // byte offset in the pickle of the opcode at fault (its length if the pickle is cut short)
	Err error // what is wrong
}

func (e *Error) Error() string { return fmt.Sprintf("pickle byte %d: %v", e.Pos, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// ErrTooManyValues is wrapped by the error for input that builds more
// values than the caller allows for its size (UnpickleOptions.MaxValues).
var ErrTooManyValues = errors.New("too many values for the input's size")

// UnpickleOptions widens or narrows what UnpickleWith accepts.
type UnpickleOptions struct {
	// Classes are the "module.name" of classes whose instances may occur,
	// pickled as protocol 2+ does for a plain class (NEWOBJ with no
	// arguments, then BUILD with the state). They decode to KindObject
	// values: nothing is looked up or called.
	Classes []string

	// Objects accepts any global: a class or function referred to as a
	// value decodes to KindGlobal, and an object made by REDUCE or
	// NEWOBJ of any callable or class to KindObject, with what the pickle
	// then adds to it (BUILD's state, APPEND and SETITEM items). Nothing
	// is imported or called. Transaction extensions written by
	// applications that use FileStorage directly can hold such objects
	// (a datetime, a set, a Decimal); this lets them be carried and
	// pickled again (see Pickle). Python 2 names (__builtin__, copy_reg)
	// are read as Python 3 reads them, and copy_reg._reconstructor(cls,
	// object, None) — how protocols 0 and 1 pickle an instance of a plain
	// class — as the NEWOBJ that protocol 2 and later write for it.
	Objects bool

	// Globals, with Objects, says which globals ("module.name") may be
	// used: called, instantiated, or referred to as a value. Others are
	// refused as without Objects. Nil allows every global.
	Globals func(name string) bool

	// MaxValues, if positive, bounds what the pickle may make the
	// decoder hold: every value pushed on the stack (built, or pushed
	// again by DUP or a memo GET), every MARK and every memo PUT counts
	// one. Each costs about 100 bytes however short its opcode, so a
	// caller decoding untrusted input sets this in proportion to the
	// input's length; past it the error wraps ErrTooManyValues. Zero
	// leaves the count unbounded, and memory up to about 150 bytes per
	// byte of input. It also bounds the bytes all dict keys may take in
	// their canonical form (64 per value allowed): keys built of shared
	// memoized tuples could otherwise cost up to 64 KiB each.
	MaxValues int
}

// Unpickle decodes p, which must hold exactly one pickle (protocols 0-4,
// Python 2 or 3) of plain data: None, bool, int, float, str, bytes, tuple,
// list, dict, with or without the memo. Globals are refused except the two
// calls Python 3 writes bytes with below protocol 3 (_codecs.encode(text,
// 'latin1') and bytes()), which decode to bytes. Errors are *Error.
func Unpickle(p []byte) (*Value, error) { return UnpickleWith(p, UnpickleOptions{}) }

// UnpickleWith is Unpickle accepting instances of o.Classes too.
func UnpickleWith(p []byte, o UnpickleOptions) (*Value, error) {
	u := &unpickler{p: p, classes: o.Classes, objects: o.Objects, globals: o.Globals, max: o.MaxValues}
	if o.MaxValues > 0 {
		kb := o.MaxValues * keyBytesPerValue
		u.keyBytes = &kb
	}
	v, err := u.run()
	if err != nil {
		return nil, &Error{Pos: u.pos, Err: err}
	}
	return v, nil
}

// unpickler decodes one pickle from a byte slice into a value tree: a
// stack machine that never calls anything.
//
// Every length is checked against the bytes left before anything is
// allocated, so nothing is allocated ahead of the bytes that justify it.
// Memory is still up to about 150 bytes per byte of input (one 1-byte
// opcode pushes a Value of about 100 bytes, plus its stack slot) unless
// max bounds the count of values, marks and memo entries (see
// UnpickleOptions.MaxValues): then it is about 150 bytes per unit of max,
// plus the strings the pickle carries, which take their own length.
type unpickler struct {
	p       []byte
	pos     int
	stack   []*Value
	marks   []int
	memo    map[int64]*Value
	classes []string
	objects bool // UnpickleOptions.Objects
	globals func(string) bool
	proto   int // the protocol its PROTO opcode gave, 0 without one
	// With objects: the state-dict keys seen (internKeys), and the one
	// timezone.utc (reduced).
	interned map[string]*Value
	utc      *Value
	max      int // UnpickleOptions.MaxValues: 0 for no bound
	count    int // values pushed, marks set and memo entries put so far
	// keyBytes, with a MaxValues bound, is what is left of the bytes the
	// canonical forms of dict keys may take in all (keyBytesPerValue
	// per value allowed); nil without one.
	keyBytes *int
}

// pyNaN is the bits of CPython's float('nan').
const pyNaN = 0x7ff8000000000000

// pyFloat parses the text of a protocol-0 FLOAT as CPython's pickle does:
// decimal, inf/infinity and nan in any case with one optional sign. A NaN
// gets float('nan')'s bits (Go's parser sets a payload bit, which
// re-pickling would write out); hexadecimal, which pickle refuses, is
// refused.
func pyFloat(l string) (float64, error) {
	t := l
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-") {
		t = t[1:]
	}
	if strings.EqualFold(t, "nan") {
		bits := uint64(pyNaN)
		if strings.HasPrefix(l, "-") {
			bits |= 1 << 63
		}
		return math.Float64frombits(bits), nil
	}
	if strings.ContainsAny(t, "xX_") {
		return 0, fmt.Errorf("invalid float literal %q", l)
	}
	return strconv.ParseFloat(l, 64)
}

// keyBytesPerValue sizes the dict-key budget of a bounded unpickle: real
// keys are short strings whose bytes are in the input, so this leaves
// them room many times over, while keys built of shared memoized tuples
// cannot cost more than a few dozen bytes per byte of input.
const keyBytesPerValue = 64

func (u *unpickler) run() (*Value, error) {
	for u.pos < len(u.p) {
		start := u.pos
		op := u.p[u.pos]
		u.pos++
		if op == '.' {
			if len(u.stack) != 1 || len(u.marks) != 0 {
				u.pos = start
				return nil, fmt.Errorf("STOP with %d values and %d marks on the stack", len(u.stack), len(u.marks))
			}
			if u.pos != len(u.p) {
				return nil, fmt.Errorf("%d bytes after STOP", len(u.p)-u.pos)
			}
			if err := u.plain(u.stack); err != nil {
				u.pos = start
				return nil, err
			}
			return u.stack[0], nil
		}
		if err := u.op(op); err != nil {
			u.pos = start
			return nil, fmt.Errorf("opcode %q: %w", op, err)
		}
		// Every opcode adds one unit at most, so checking after each
		// keeps the count within max+1.
		if u.max > 0 && u.count > u.max {
			u.pos = start
			return nil, fmt.Errorf("opcode %q: %w: more than %d values, marks and memo entries in %d bytes",
				op, ErrTooManyValues, u.max, len(u.p))
		}
	}
	return nil, fmt.Errorf("truncated pickle (no STOP)")
}

// plain refuses a global anywhere but as the callable of a REDUCE or the
// class of a NEWOBJ, unless the caller accepts objects: it would be a
// reference to code, not data.
func (u *unpickler) plain(items []*Value) error {
	if u.objects && u.globals == nil {
		return nil
	}
	for _, it := range items {
		if it.k == KindGlobal && !u.allows(it.s) {
			return fmt.Errorf("global %s used as a value", dotted(it.s))
		}
	}
	return nil
}

// allows reports whether the global "module\nname" may make an object or
// be a value (UnpickleOptions.Objects and Globals).
func (u *unpickler) allows(name string) bool {
	return u.objects && (u.globals == nil || u.globals(dotted(name)))
}

func (u *unpickler) push(v *Value) {
	u.count++
	u.stack = append(u.stack, v)
}

// floor is the lowest stack index the current mark frame may touch.
func (u *unpickler) floor() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (*Value, error) {
	if len(u.stack) <= u.floor() {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (*Value, error) {
	if len(u.stack) <= u.floor() {
		return nil, fmt.Errorf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the values pushed since the last MARK and drops the mark.
func (u *unpickler) popMark() ([]*Value, error) {
	if len(u.marks) == 0 {
		return nil, fmt.Errorf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]*Value(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, u.plain(items)
}

// popN pops the top n values (within the current mark frame), refusing
// bare globals.
func (u *unpickler) popN(n int) ([]*Value, error) {
	if len(u.stack)-u.floor() < n {
		return nil, fmt.Errorf("stack underflow")
	}
	items := append([]*Value(nil), u.stack[len(u.stack)-n:]...)
	u.stack = u.stack[:len(u.stack)-n]
	return items, u.plain(items)
}

func (u *unpickler) take(n int) ([]byte, error) {
	if n < 0 || n > len(u.p)-u.pos {
		return nil, fmt.Errorf("length %d runs past the end (%d bytes left)", n, len(u.p)-u.pos)
	}
	b := u.p[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.take(n)
	if err != nil {
		return 0, err
	}
	var x uint64
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | uint64(b[i])
	}
	return x, nil
}

func (u *unpickler) line() (string, error) {
	i := bytes.IndexByte(u.p[u.pos:], '\n')
	if i < 0 {
		return "", fmt.Errorf("unterminated line")
	}
	s := string(u.p[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

// sized reads a length-prefixed string (n = 1, 4 or 8 length bytes).
func (u *unpickler) sized(n int, signed bool) (string, error) {
	l, err := u.uint(n)
	if err != nil {
		return "", err
	}
	if signed && int32(l) < 0 {
		return "", fmt.Errorf("negative length %d", int32(l))
	}
	if l > uint64(len(u.p)-u.pos) {
		return "", fmt.Errorf("length %d runs past the end (%d bytes left)", l, len(u.p)-u.pos)
	}
	b, err := u.take(int(l))
	return string(b), err
}

func (u *unpickler) op(op byte) error {
	switch op {
	case '(':
		u.count++
		u.marks = append(u.marks, len(u.stack))
	case 'N':
		u.push(&Value{k: KindNone})
	case '\x88', '\x89':
		u.push(&Value{k: KindBool, b: op == '\x88'})
	case 'K', 'M':
		n := map[byte]int{'K': 1, 'M': 2}[op]
		x, err := u.uint(n)
		if err != nil {
			return err
		}
		u.push(&Value{k: KindInt, i: int64(x)})
	case 'J':
		x, err := u.uint(4)
		if err != nil {
			return err
		}
		u.push(&Value{k: KindInt, i: int64(int32(uint32(x)))})
	case 'I', 'L':
		return u.textInt(op)
	case '\x8a', '\x8b':
		return u.binLong(op)
	case 'G':
		x, err := u.binFloat()
		if err != nil {
			return err
		}
		u.push(&Value{k: KindFloat, f: x})
	case 'F':
		l, err := u.line()
		if err != nil {
			return err
		}
		x, err := pyFloat(l)
		if err != nil {
			return err
		}
		u.push(&Value{k: KindFloat, f: x})
	default:
		return u.strOp(op)
	}
	return nil
}

func (u *unpickler) strOp(op byte) error {
	var (
		s   string
		err error
		k   Kind
	)
	switch op {
	case 'X':
		s, err = u.sized(4, false)
		k = KindStr
	case '\x8d':
		s, err = u.sized(8, false)
		k = KindStr
	case '\x8e':
		s, err = u.sized(8, false)
		k = KindBytes
	case '\x8c':
		s, err = u.sized(1, false)
		k = KindStr
	case 'V':
		if s, err = u.line(); err == nil {
			s, err = rawUnicodeEscape(s)
		}
		k = KindStr
	case 'S':
		if s, err = u.line(); err == nil {
			s, err = stringLiteral(s)
		}
		k = KindBinStr
	case 'U':
		s, err = u.sized(1, false)
		k = KindBinStr
	case 'T':
		s, err = u.sized(4, true)
		k = KindBinStr
	case 'C':
		s, err = u.sized(1, false)
		k = KindBytes
	case 'B':
		s, err = u.sized(4, false)
		k = KindBytes
	default:
		return u.containerOp(op)
	}
	if err != nil {
		return err
	}
	if k == KindStr && !validPyUTF8(s) {
		return fmt.Errorf("invalid UTF-8 in text")
	}
	u.push(&Value{k: k, s: s})
	return nil
}

func (u *unpickler) containerOp(op byte) error {
	switch op {
	case ')':
		u.push(&Value{k: KindTuple})
	case ']':
		u.push(&Value{k: KindList})
	case '}':
		u.push(&Value{k: KindDict})
	case 't', 'l', 'd':
		items, err := u.popMark()
		if err != nil {
			return err
		}
		v := &Value{k: map[byte]Kind{'t': KindTuple, 'l': KindList, 'd': KindDict}[op]}
		if op == 'd' {
			return u.pushDict(v, items)
		}
		v.items = items
		u.push(v)
	case '\x85', '\x86', '\x87':
		items, err := u.popN(int(op-'\x85') + 1)
		if err != nil {
			return err
		}
		u.push(&Value{k: KindTuple, items: items})
	case 'a', 'e':
		return u.appendOp(op)
	case 's', 'u':
		return u.setItemOp(op)
	default:
		return u.otherOp(op)
	}
	return nil
}

func (u *unpickler) pushDict(d *Value, items []*Value) error {
	if err := d.setItemsBudget(items, u.keyBytes); err != nil {
		return err
	}
	u.push(d)
	return nil
}

func (u *unpickler) appendOp(op byte) error {
	var items []*Value
	var err error
	if op == 'a' {
		items, err = u.popN(1)
	} else {
		items, err = u.popMark()
	}
	if err != nil {
		return err
	}
	l, err := u.top()
	if err != nil {
		return err
	}
	if l.k == KindObject && u.objects {
		o := l.made()
		o.list = append(o.list, items...)
		l.obj = &o
		return nil
	}
	if l.k != KindList {
		return fmt.Errorf("append to a %v", l.k)
	}
	l.items = append(l.items, items...)
	return nil
}

func (u *unpickler) setItemOp(op byte) error {
	var items []*Value
	var err error
	if op == 's' {
		items, err = u.popN(2)
	} else {
		items, err = u.popMark()
	}
	if err != nil {
		return err
	}
	d, err := u.top()
	if err != nil {
		return err
	}
	if d.k == KindObject && u.objects {
		if len(items)%2 != 0 {
			return fmt.Errorf("odd number of items (%d) set on an object", len(items))
		}
		o := d.made()
		o.dict = append(o.dict, items...)
		d.obj = &o
		return nil
	}
	if d.k != KindDict {
		return fmt.Errorf("set item on a %v", d.k)
	}
	return d.setItemsBudget(items, u.keyBytes)
}

func (u *unpickler) otherOp(op byte) error {
	switch op {
	case 'c':
		mod, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		if u.proto < 3 {
			mod, name = py3Name(mod, name)
		}
		u.push(&Value{k: KindGlobal, s: mod + "\n" + name})
	case '\x93':
		return u.stackGlobal()
	case 'R':
		return u.reduce()
	case '\x81':
		return u.newObj()
	case 'b':
		return u.build()
	case 'q', 'r', 'p', '\x94':
		return u.put(op)
	case 'h', 'j', 'g':
		return u.get(op)
	case '\x80':
		b, err := u.take(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return fmt.Errorf("unsupported protocol %d", b[0])
		}
		u.proto = int(b[0])
	case '\x95':
		_, err := u.take(8)
		return err
	case '0':
		_, err := u.pop()
		return err
	case '1':
		_, err := u.popMark()
		return err
	case '2':
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)
	default:
		return fmt.Errorf("unsupported opcode")
	}
	return nil
}

// stackGlobal is protocol 4's GLOBAL with module and name from the stack.
func (u *unpickler) stackGlobal() error {
	mn, err := u.popN(2)
	if err != nil {
		return err
	}
	if mn[0].k != KindStr || mn[1].k != KindStr {
		return fmt.Errorf("module and name are a %v and a %v", mn[0].k, mn[1].k)
	}
	if strings.Contains(mn[0].s, "\n") || strings.Contains(mn[1].s, "\n") {
		return fmt.Errorf("module or name with a newline")
	}
	u.push(&Value{k: KindGlobal, s: mn[0].s + "\n" + mn[1].s})
	return nil
}

// newObj is cls.__new__(cls, *args): with Objects, of any class;
// otherwise only of the classes the caller listed, and only without
// arguments. It creates a KindObject value.
func (u *unpickler) newObj() error {
	args, err := u.pop()
	if err != nil {
		return err
	}
	cls, err := u.pop()
	if err != nil {
		return err
	}
	if cls.k != KindGlobal || args.k != KindTuple {
		return fmt.Errorf("NEWOBJ of %v with %v", cls.k, args.k)
	}
	if u.allows(cls.s) {
		v := &Value{k: KindObject, s: cls.s}
		if len(args.items) != 0 {
			v.obj = &object{args: args}
		}
		u.push(v)
		return nil
	}
	if len(args.items) != 0 {
		return fmt.Errorf("NEWOBJ of %s with arguments", dotted(cls.s))
	}
	if !slices.Contains(u.classes, dotted(cls.s)) {
		return fmt.Errorf("unsupported global %s", dotted(cls.s))
	}
	u.push(&Value{k: KindObject, s: cls.s})
	return nil
}

// build sets the state of an object made by NEWOBJ (once).
func (u *unpickler) build() error {
	st, err := u.popN(1)
	if err != nil {
		return err
	}
	obj, err := u.top()
	if err != nil {
		return err
	}
	if obj.k != KindObject || obj.state != nil {
		return fmt.Errorf("BUILD on a %v", obj.k)
	}
	obj.state = st[0]
	if u.objects {
		u.internKeys(st[0])
	}
	return nil
}

// internKeys gives the text keys of a BUILD state dict (or of the dict
// in a (dict, slots) state) one Value per text for the whole pickle.
// CPython interns them as it sets them in the instance's __dict__, and
// __getstate__ methods return dicts keyed by interned literals, so when
// the objects are pickled again, two instances' attribute names are one
// object: a memo GET, which the pickle they came from (a T message, in
// fast mode) did not have.
func (u *unpickler) internKeys(state *Value) {
	if state.k == KindTuple && len(state.items) == 2 {
		state = state.items[0]
	}
	if state.k != KindDict {
		return
	}
	for i := 0; i < len(state.items); i += 2 {
		k := state.items[i]
		if k.k != KindStr {
			continue
		}
		if u.interned == nil {
			u.interned = make(map[string]*Value)
		}
		if v, ok := u.interned[k.s]; ok {
			state.items[i] = v
		} else {
			u.interned[k.s] = k
		}
	}
}

// reduce handles the two calls Python 3 pickles bytes with below
// protocol 3: _codecs.encode(text, 'latin1') and bytes().
func (u *unpickler) reduce() error {
	args, err := u.pop()
	if err != nil {
		return err
	}
	fn, err := u.pop()
	if err != nil {
		return err
	}
	if fn.k != KindGlobal || args.k != KindTuple {
		return fmt.Errorf("REDUCE of %v with %v", fn.k, args.k)
	}
	switch fn.s {
	case "_codecs\nencode":
		if len(args.items) != 2 || args.items[0].k != KindStr || args.items[1].k != KindStr || args.items[1].s != "latin1" {
			return fmt.Errorf("unsupported _codecs.encode arguments")
		}
		b, err := latin1(args.items[0].s)
		if err != nil {
			return err
		}
		u.push(&Value{k: KindBytes, s: b})
	case "__builtin__\nbytes", "builtins\nbytes":
		if len(args.items) != 0 {
			return fmt.Errorf("unsupported bytes() arguments")
		}
		u.push(&Value{k: KindBytes})
	case "__builtin__\ndict", "builtins\ndict":
		return u.reduceDict(args.items)
	case "__builtin__\nlist", "builtins\nlist", "__builtin__\ntuple", "builtins\ntuple":
		k := KindList
		if strings.HasSuffix(fn.s, "tuple") {
			k = KindTuple
		}
		var items []*Value
		switch {
		case len(args.items) == 0:
		case len(args.items) == 1 && (args.items[0].k == KindList || args.items[0].k == KindTuple):
			items = append(items, args.items[0].items...)
		default:
			return fmt.Errorf("unsupported %s() arguments", k)
		}
		u.push(&Value{k: k, items: items})
	default:
		if !u.allows(fn.s) {
			return fmt.Errorf("unsupported global %s", strings.ReplaceAll(fn.s, "\n", "."))
		}
		u.push(u.reduced(fn, args))
	}
	return nil
}

// reduced is the inert object fn(*args) makes.
//
// Below protocol 2, copyreg._reconstructor(cls, object, None) is how
// CPython pickles an instance of a plain class (object.__new__(cls)): it
// is recorded as the NEWOBJ that protocol 2 and later write for it, so it
// pickles again at protocol 3 as CPython pickles the object it made, and
// below protocol 2 as it was. An instance of a tuple subclass
// (_reconstructor(cls, tuple, items): a namedtuple) is recorded as the
// NEWOBJ of cls with the items that protocol 2 and later write. Other
// builtin bases (list, dict, int subclasses) stay as they were read.
//
// datetime.timezone(timedelta(0)) is timezone.utc, one object however
// often a pickle spells it: it is one Value for the whole pickle, so that
// two aware datetimes in UTC pickle again as CPython pickles them (the
// second timezone a memo GET).
func (u *unpickler) reduced(fn, args *Value) *Value {
	a := args.items
	if fn.s == "copyreg\n_reconstructor" && u.proto < 2 && len(a) == 3 && a[0].k == KindGlobal &&
		a[1].k == KindGlobal && a[1].s == "builtins\nobject" && a[2].k == KindNone {
		return &Value{k: KindObject, s: a[0].s, obj: &object{recon: true}}
	}
	if fn.s == "copyreg\n_reconstructor" && u.proto < 2 && len(a) == 3 && a[0].k == KindGlobal &&
		a[1].k == KindGlobal && a[1].s == "builtins\ntuple" && a[2].k == KindTuple {
		// A tuple subclass (a namedtuple): tuple.__new__(cls, items),
		// which protocol 2 and later write as NEWOBJ of cls with the
		// items as arguments.
		return &Value{k: KindObject, s: a[0].s, obj: &object{args: a[2]}}
	}
	v := &Value{k: KindObject, s: fn.s, obj: &object{reduce: true, args: args}}
	if fn.s == "datetime\ntimezone" && len(a) == 1 && isZeroDelta(a[0]) {
		if u.utc == nil {
			u.utc = v
		}
		return u.utc
	}
	return v
}

// isZeroDelta reports whether v is datetime.timedelta(0) as pickled:
// timedelta(0, 0, 0).
func isZeroDelta(v *Value) bool {
	if v.k != KindObject || v.s != "datetime\ntimedelta" || v.obj == nil || !v.obj.reduce ||
		v.state != nil || v.obj.list != nil || v.obj.dict != nil || v.obj.args == nil {
		return false
	}
	for _, x := range v.obj.args.items {
		if x.k != KindInt || x.i != 0 {
			return false
		}
	}
	return len(v.obj.args.items) == 3
}

// reduceDict decodes dict(), dict(pairs) and dict(mapping): how a dict
// subclass with a __reduce__ pickles (ZODB's own tests send one as a
// transaction extension). The result is a plain dict, as Python's server
// gets after unpickling.
func (u *unpickler) reduceDict(args []*Value) error {
	d := &Value{k: KindDict}
	switch {
	case len(args) == 0:
		return u.pushDict(d, nil)
	case len(args) == 1 && args[0].k == KindDict:
		return u.pushDict(d, append([]*Value(nil), args[0].items...))
	case len(args) == 1 && (args[0].k == KindList || args[0].k == KindTuple):
		kv := make([]*Value, 0, 2*len(args[0].items))
		for _, p := range args[0].items {
			if (p.k != KindTuple && p.k != KindList) || len(p.items) != 2 {
				return fmt.Errorf("dict() of a sequence holding a %v that is not a pair", p.k)
			}
			kv = append(kv, p.items[0], p.items[1])
		}
		return u.pushDict(d, kv)
	}
	return fmt.Errorf("unsupported dict() arguments")
}

// latin1 encodes text whose code points are all below U+0100 to bytes.
func latin1(s string) (string, error) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r == utf8.RuneError || r > 0xff {
			return "", fmt.Errorf("text is not latin-1")
		}
		b = append(b, byte(r))
	}
	return string(b), nil
}

func (u *unpickler) put(op byte) error {
	var idx int64
	switch op {
	case 'q':
		x, err := u.uint(1)
		if err != nil {
			return err
		}
		idx = int64(x)
	case 'r':
		x, err := u.uint(4)
		if err != nil {
			return err
		}
		idx = int64(x)
	case 'p':
		l, err := u.line()
		if err != nil {
			return err
		}
		if idx, err = strconv.ParseInt(l, 10, 64); err != nil {
			return err
		}
	case '\x94':
		idx = int64(len(u.memo))
	}
	v, err := u.top()
	if err != nil {
		return err
	}
	if u.memo == nil {
		u.memo = make(map[int64]*Value)
	}
	u.count++
	u.memo[idx] = v
	return nil
}

func (u *unpickler) get(op byte) error {
	var idx int64
	switch op {
	case 'h':
		x, err := u.uint(1)
		if err != nil {
			return err
		}
		idx = int64(x)
	case 'j':
		x, err := u.uint(4)
		if err != nil {
			return err
		}
		idx = int64(x)
	case 'g':
		l, err := u.line()
		if err != nil {
			return err
		}
		if idx, err = strconv.ParseInt(l, 10, 64); err != nil {
			return err
		}
	}
	v, ok := u.memo[idx]
	if !ok {
		return fmt.Errorf("memo key %d not found", idx)
	}
	u.push(v)
	return nil
}

func (u *unpickler) textInt(op byte) error {
	l, err := u.line()
	if err != nil {
		return err
	}
	if op == 'I' && (l == "00" || l == "01") {
		u.push(&Value{k: KindBool, b: l == "01"})
		return nil
	}
	if op == 'L' {
		l = strings.TrimSuffix(l, "L")
	}
	if l == "" || len(l) > 4300 {
		return fmt.Errorf("invalid integer literal")
	}
	bi, ok := new(big.Int).SetString(l, 10)
	if !ok {
		return fmt.Errorf("invalid integer literal %q", l)
	}
	u.push(bigInt(bi))
	return nil
}

func (u *unpickler) binLong(op byte) error {
	var n uint64
	var err error
	if op == '\x8a' {
		n, err = u.uint(1)
	} else {
		n, err = u.uint(4)
		if err == nil && int32(uint32(n)) < 0 {
			return fmt.Errorf("negative length")
		}
	}
	if err != nil {
		return err
	}
	if n > uint64(len(u.p)-u.pos) {
		return fmt.Errorf("length %d runs past the end", n)
	}
	b, err := u.take(int(n))
	if err != nil {
		return err
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	bi := new(big.Int).SetBytes(be)
	if len(b) > 0 && b[len(b)-1]&0x80 != 0 {
		bi.Sub(bi, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	u.push(bigInt(bi))
	return nil
}

func (u *unpickler) binFloat() (float64, error) {
	b, err := u.take(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}
