package zrsproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unpickler decodes one pickle from a byte slice into a value tree. It
// understands the opcodes Python 2 and Python 3 pickles of protocols 0-3
// use for None, bools, ints, floats, text, bytes, tuples, lists and dicts,
// the memo, and the two REDUCE forms Python 3 uses for bytes below
// protocol 3. Anything else is an error wrapping ErrProtocol.
//
// Every length is checked against the bytes left before anything is
// allocated, so memory stays proportional to the input.
type unpickler struct {
	p     []byte
	pos   int
	stack []*value
	marks []int
	memo  map[int64]*value
}

// unpickle decodes p, which must hold exactly one pickle.
func unpickle(p []byte) (*value, error) {
	u := &unpickler{p: p}
	v, err := u.run()
	if err != nil {
		return nil, protoErrorf("pickle byte %d: %v", u.pos, err)
	}
	return v, nil
}

func (u *unpickler) run() (*value, error) {
	for u.pos < len(u.p) {
		op := u.p[u.pos]
		u.pos++
		if op == '.' {
			if len(u.stack) != 1 || len(u.marks) != 0 {
				return nil, fmt.Errorf("STOP with %d values and %d marks on the stack", len(u.stack), len(u.marks))
			}
			if u.pos != len(u.p) {
				return nil, fmt.Errorf("%d bytes after STOP", len(u.p)-u.pos)
			}
			return u.stack[0], nil
		}
		if err := u.op(op); err != nil {
			u.pos--
			return nil, fmt.Errorf("opcode %q: %w", op, err)
		}
	}
	return nil, fmt.Errorf("truncated pickle (no STOP)")
}

func (u *unpickler) push(v *value) { u.stack = append(u.stack, v) }

// floor is the lowest stack index the current mark frame may touch.
func (u *unpickler) floor() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (*value, error) {
	if len(u.stack) <= u.floor() {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (*value, error) {
	if len(u.stack) <= u.floor() {
		return nil, fmt.Errorf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the values pushed since the last MARK and drops the mark.
func (u *unpickler) popMark() ([]*value, error) {
	if len(u.marks) == 0 {
		return nil, fmt.Errorf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]*value(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
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
		u.marks = append(u.marks, len(u.stack))
	case 'N':
		u.push(&value{k: kNone})
	case '\x88', '\x89':
		u.push(&value{k: kBool, b: op == '\x88'})
	case 'K', 'M':
		n := map[byte]int{'K': 1, 'M': 2}[op]
		x, err := u.uint(n)
		if err != nil {
			return err
		}
		u.push(&value{k: kInt, i: int64(x)})
	case 'J':
		x, err := u.uint(4)
		if err != nil {
			return err
		}
		u.push(&value{k: kInt, i: int64(int32(uint32(x)))})
	case 'I', 'L':
		return u.textInt(op)
	case '\x8a', '\x8b':
		return u.binLong(op)
	case 'G':
		x, err := u.binFloat()
		if err != nil {
			return err
		}
		u.push(&value{k: kFloat, f: x})
	case 'F':
		l, err := u.line()
		if err != nil {
			return err
		}
		x, err := strconv.ParseFloat(l, 64)
		if err != nil {
			return err
		}
		u.push(&value{k: kFloat, f: x})
	default:
		return u.strOp(op)
	}
	return nil
}

func (u *unpickler) strOp(op byte) error {
	var (
		s   string
		err error
		k   kind
	)
	switch op {
	case 'X':
		s, err = u.sized(4, false)
		k = kStr
	case '\x8c':
		s, err = u.sized(1, false)
		k = kStr
	case 'U':
		s, err = u.sized(1, false)
		k = kBinStr
	case 'T':
		s, err = u.sized(4, true)
		k = kBinStr
	case 'C':
		s, err = u.sized(1, false)
		k = kBytes
	case 'B':
		s, err = u.sized(4, false)
		k = kBytes
	default:
		return u.containerOp(op)
	}
	if err != nil {
		return err
	}
	if k == kStr && !validPyUTF8(s) {
		return fmt.Errorf("invalid UTF-8 in text")
	}
	u.push(&value{k: k, s: s})
	return nil
}

func (u *unpickler) containerOp(op byte) error {
	switch op {
	case ')':
		u.push(&value{k: kTuple})
	case ']':
		u.push(&value{k: kList})
	case '}':
		u.push(&value{k: kDict})
	case 't', 'l', 'd':
		items, err := u.popMark()
		if err != nil {
			return err
		}
		v := &value{k: map[byte]kind{'t': kTuple, 'l': kList, 'd': kDict}[op]}
		if op == 'd' {
			return u.pushDict(v, items)
		}
		v.items = items
		u.push(v)
	case '\x85', '\x86', '\x87':
		n := int(op-'\x85') + 1
		if len(u.stack)-u.floor() < n {
			return fmt.Errorf("stack underflow")
		}
		items := append([]*value(nil), u.stack[len(u.stack)-n:]...)
		u.stack = u.stack[:len(u.stack)-n]
		u.push(&value{k: kTuple, items: items})
	case 'a', 'e':
		return u.appendOp(op)
	case 's', 'u':
		return u.setItemOp(op)
	default:
		return u.otherOp(op)
	}
	return nil
}

func (u *unpickler) pushDict(d *value, items []*value) error {
	if err := setItems(d, items); err != nil {
		return err
	}
	u.push(d)
	return nil
}

func (u *unpickler) appendOp(op byte) error {
	var items []*value
	if op == 'a' {
		v, err := u.pop()
		if err != nil {
			return err
		}
		items = []*value{v}
	} else {
		var err error
		if items, err = u.popMark(); err != nil {
			return err
		}
	}
	l, err := u.top()
	if err != nil {
		return err
	}
	if l.k != kList {
		return fmt.Errorf("append to a %v", l.k)
	}
	l.items = append(l.items, items...)
	return nil
}

func (u *unpickler) setItemOp(op byte) error {
	var items []*value
	if op == 's' {
		if len(u.stack)-u.floor() < 2 {
			return fmt.Errorf("stack underflow")
		}
		items = append([]*value(nil), u.stack[len(u.stack)-2:]...)
		u.stack = u.stack[:len(u.stack)-2]
	} else {
		var err error
		if items, err = u.popMark(); err != nil {
			return err
		}
	}
	d, err := u.top()
	if err != nil {
		return err
	}
	if d.k != kDict {
		return fmt.Errorf("set item on a %v", d.k)
	}
	return setItems(d, items)
}

// setItems adds key/value pairs to dict d with Python's semantics: a key
// equal to an existing one replaces that entry's value in place.
func setItems(d *value, kv []*value) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("odd number of items (%d) for a dict", len(kv))
	}
	if d.index == nil {
		d.index = make(map[string]int, len(kv)/2)
	}
	for i := 0; i < len(kv); i += 2 {
		budget := maxKeyLen
		ck, err := canonicalKey(kv[i], &budget)
		if err != nil {
			return err
		}
		if j, ok := d.index[ck]; ok {
			d.items[j+1] = kv[i+1]
			continue
		}
		d.index[ck] = len(d.items)
		d.items = append(d.items, kv[i], kv[i+1])
	}
	return nil
}

// maxKeyLen bounds the canonical form of one dict key, so a key built from
// shared tuples (a memo DAG) cannot expand exponentially.
const maxKeyLen = 1 << 16

// canonicalKey returns a string equal for two keys exactly when Python
// considers them the same dict key, or an error for unhashable keys.
// NaN keys are given distinct strings only by accident of identity; they
// do not occur in real extensions.
func canonicalKey(v *value, budget *int) (string, error) {
	ck, err := canonicalKey1(v, budget)
	if err == nil {
		if *budget -= len(ck); *budget < 0 {
			err = fmt.Errorf("dict key too large")
		}
	}
	return ck, err
}

func canonicalKey1(v *value, budget *int) (string, error) {
	switch v.k {
	case kNone:
		return "N", nil
	case kBool:
		if v.b {
			return "n1", nil
		}
		return "n0", nil
	case kInt:
		return "n" + strconv.FormatInt(v.i, 10), nil
	case kBigInt:
		return "n" + v.big.String(), nil
	case kFloat:
		if v.f == math.Trunc(v.f) && math.Abs(v.f) < 1e300 {
			bf := new(big.Float).SetFloat64(v.f)
			bi, _ := bf.Int(nil)
			return "n" + bi.String(), nil
		}
		return "f" + strconv.FormatUint(math.Float64bits(v.f), 16), nil
	case kStr:
		return "s" + v.s, nil
	case kBytes:
		return "b" + v.s, nil
	case kBinStr:
		if isASCII(v.s) {
			return "s" + v.s, nil
		}
		return "b" + v.s, nil
	case kTuple:
		var sb strings.Builder
		sb.WriteString("t")
		for _, it := range v.items {
			ck, err := canonicalKey(it, budget)
			if err != nil {
				return "", err
			}
			sb.WriteString(strconv.Itoa(len(ck)))
			sb.WriteByte(':')
			sb.WriteString(ck)
		}
		return sb.String(), nil
	}
	return "", fmt.Errorf("unhashable dict key of type %v", v.k)
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
		u.push(&value{k: kGlobal, s: mod + "\n" + name})
	case 'R':
		return u.reduce()
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
	if fn.k != kGlobal || args.k != kTuple {
		return fmt.Errorf("REDUCE of %v with %v", fn.k, args.k)
	}
	switch fn.s {
	case "_codecs\nencode":
		if len(args.items) != 2 || args.items[0].k != kStr || args.items[1].k != kStr || args.items[1].s != "latin1" {
			return fmt.Errorf("unsupported _codecs.encode arguments")
		}
		b, err := latin1(args.items[0].s)
		if err != nil {
			return err
		}
		u.push(&value{k: kBytes, s: b})
	case "__builtin__\nbytes", "builtins\nbytes":
		if len(args.items) != 0 {
			return fmt.Errorf("unsupported bytes() arguments")
		}
		u.push(&value{k: kBytes})
	default:
		return fmt.Errorf("unsupported global %s", strings.ReplaceAll(fn.s, "\n", "."))
	}
	return nil
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
		u.memo = make(map[int64]*value)
	}
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
		u.push(&value{k: kBool, b: l == "01"})
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
	u.push(intValue(bi))
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
	u.push(intValue(bi))
	return nil
}

func intValue(bi *big.Int) *value {
	if bi.IsInt64() {
		return &value{k: kInt, i: bi.Int64()}
	}
	return &value{k: kBigInt, big: bi}
}

func (u *unpickler) binFloat() (float64, error) {
	b, err := u.take(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}
