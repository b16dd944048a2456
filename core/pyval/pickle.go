package pyval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"
)

// Pickle opcodes the encoder emits.
const (
	opMark          = '('
	opStop          = '.'
	opNone          = 'N'
	opBinInt        = 'J'
	opBinInt1       = 'K'
	opBinInt2       = 'M'
	opLong          = 'L'
	opBinFloat      = 'G'
	opBinUnicode    = 'X'
	opShortBinBytes = 'C'
	opBinBytes      = 'B'
	opGlobal        = 'c'
	opReduce        = 'R'
	opBuild         = 'b'
	opEmptyTuple    = ')'
	opTuple         = 't'
	opEmptyList     = ']'
	opAppend        = 'a'
	opAppends       = 'e'
	opEmptyDict     = '}'
	opSetItem       = 's'
	opSetItems      = 'u'
	opBinPut        = 'q'
	opLongBinPut    = 'r'
	opBinGet        = 'h'
	opLongBinGet    = 'j'
	opProto         = '\x80'
	opNewObj        = '\x81'
	opLong1         = '\x8a'
	opLong4         = '\x8b'
	opTuple1        = '\x85'
	opNewTrue       = '\x88'
	opNewFalse      = '\x89'
)

// batchSize is how many list items or dict entries CPython's pickler puts
// between one MARK and its APPENDS/SETITEMS.
const batchSize = 1000

// MaxDepth bounds the nesting of containers the encoders accept (CPython's
// pickler stops near its recursion limit of 1000 as well), so a hostile
// value cannot exhaust the stack.
const MaxDepth = 1000

// ErrTooLong is wrapped by Pickle's error when the output would pass
// PickleOptions.Max.
var ErrTooLong = errors.New("pickle too long")

// PickleOptions selects the pickle dialect.
type PickleOptions struct {
	// Protocol is 1, 2 or 3. Protocol 1 writes bytes as Python 3 does
	// below protocol 3 (_codecs.encode(latin-1 text, 'latin1'), or
	// __builtin__.bytes() when empty).
	Protocol int
	// Fast is CPython's "fast" mode: no memo, so an object reachable twice
	// is written twice. Without it (protocol 3 only) the memo follows
	// object identity and CPython's post-unpickling sharing of small
	// strings (see the package doc).
	Fast bool
	// Max bounds the output in bytes; 0 means no limit. A value with shared
	// subtrees can expand exponentially in fast mode, so set it for any
	// value built from decoded input.
	Max int
}

// Pickle returns the pickle of v, STOP included, byte for byte what
// CPython's C pickler writes for the same Python object with the same
// options. Containers reachable from themselves and containers nested
// deeper than MaxDepth are refused.
//
// Globals and objects (see UnpickleOptions.Objects) are written as
// CPython's save_global and save_reduce write them: GLOBAL (with Python 2
// names below protocol 3), then the object made as its pickle said, by
// REDUCE or NEWOBJ, then its items and state. Below protocol 2 CPython
// would spell an object made by NEWOBJ with copy_reg._reconstructor; it
// is written with NEWOBJ at every protocol instead (unless it was read
// from copy_reg._reconstructor), which every Python unpickler reads
// whatever the protocol and which makes the object exactly as the
// original pickle did. Below protocol 3 a builtin exception is written
// as __builtin__.X where CPython writes exceptions.X; Python 2 and 3
// load either.
func Pickle(v *Value, o PickleOptions) ([]byte, error) {
	if o.Protocol < 1 || o.Protocol > 3 {
		return nil, fmt.Errorf("pickle protocol %d not supported (1-3)", o.Protocol)
	}
	if !o.Fast && o.Protocol != 3 {
		return nil, fmt.Errorf("pickling with the memo is supported for protocol 3 only")
	}
	max := o.Max
	if max <= 0 {
		max = math.MaxInt
	}
	p := &pickler{proto: o.Protocol, max: max, active: make(map[*Value]bool)}
	if !o.Fast {
		p.memo = make(map[any]int)
	}
	if p.proto >= 2 {
		p.buf = append(p.buf, opProto, byte(p.proto))
	}
	if err := p.save(v); err != nil {
		return nil, err
	}
	p.buf = append(p.buf, opStop)
	if len(p.buf) > p.max {
		return nil, p.tooLong()
	}
	return p.buf, nil
}

// pickler writes a value tree the way CPython's C pickler does.
type pickler struct {
	buf    []byte
	proto  int
	memo   map[any]int // nil in fast mode; identity → memo index
	active map[*Value]bool
	max    int
}

func (p *pickler) tooLong() error {
	return fmt.Errorf("%w: more than %d bytes", ErrTooLong, p.max)
}

func (p *pickler) save(v *Value) error {
	if len(p.buf) > p.max {
		return p.tooLong()
	}
	switch v.k {
	case KindNone:
		p.buf = append(p.buf, opNone)
	case KindBool:
		p.saveBool(v.b)
	case KindInt:
		p.saveInt(v.i)
	case KindBigInt:
		p.saveBig(v.big)
	case KindFloat:
		p.buf = append(p.buf, opBinFloat)
		p.buf = binary.BigEndian.AppendUint64(p.buf, math.Float64bits(v.f))
	case KindGlobal:
		p.saveGlobal(v.s)
	default:
		if p.memo != nil {
			if idx, ok := p.memo[identity(v)]; ok {
				p.get(idx)
				return nil
			}
		}
		return p.saveObject(v)
	}
	return nil
}

func (p *pickler) saveObject(v *Value) error {
	switch v.k {
	case KindStr:
		p.saveStr(v.s)
		p.put(v)
	case KindBytes:
		p.saveBytes(v)
	case KindBinStr:
		// A Python 2 str, as ZODB reads one on Python 3: text when
		// ASCII, bytes otherwise.
		if isASCII(v.s) {
			p.saveStr(v.s)
			p.put(v)
		} else {
			p.saveBytes(v)
		}
	case KindTuple, KindList, KindDict, KindObject:
		if p.active[v] {
			return fmt.Errorf("cannot pickle a %v that contains itself", v.k)
		}
		if len(p.active) >= MaxDepth {
			return fmt.Errorf("cannot pickle containers nested deeper than %d", MaxDepth)
		}
		p.active[v] = true
		defer delete(p.active, v)
		switch v.k {
		case KindTuple:
			return p.saveTuple(v)
		case KindList:
			return p.saveList(v)
		case KindDict:
			return p.saveDict(v)
		default:
			return p.saveInstance(v)
		}
	default:
		return fmt.Errorf("cannot pickle a %v", v.k)
	}
	return nil
}

// identity is the memo key of an object: the value itself for the objects
// CPython shares (see Value.singletonKey), the node otherwise.
func identity(v *Value) any {
	if k := v.singletonKey(); k != "" {
		return k
	}
	return v
}

func (p *pickler) put(key any) {
	if p.memo == nil {
		return
	}
	if v, ok := key.(*Value); ok {
		key = identity(v)
	}
	idx := len(p.memo)
	p.memo[key] = idx
	if idx < 256 {
		p.buf = append(p.buf, opBinPut, byte(idx))
	} else {
		p.buf = append(p.buf, opLongBinPut)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(idx))
	}
}

func (p *pickler) get(idx int) {
	if idx < 256 {
		p.buf = append(p.buf, opBinGet, byte(idx))
	} else {
		p.buf = append(p.buf, opLongBinGet)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(idx))
	}
}

func (p *pickler) saveBool(b bool) {
	switch {
	case p.proto >= 2 && b:
		p.buf = append(p.buf, opNewTrue)
	case p.proto >= 2:
		p.buf = append(p.buf, opNewFalse)
	case b:
		p.buf = append(p.buf, "I01\n"...)
	default:
		p.buf = append(p.buf, "I00\n"...)
	}
}

func (p *pickler) saveInt(i int64) {
	switch {
	case i >= 0 && i <= 0xff:
		p.buf = append(p.buf, opBinInt1, byte(i))
	case i >= 0 && i <= 0xffff:
		p.buf = append(p.buf, opBinInt2, byte(i), byte(i>>8))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		p.buf = append(p.buf, opBinInt)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(int32(i)))
	default:
		p.saveBig(big.NewInt(i))
	}
}

// saveBig writes an int outside the 32-bit range: LONG1/LONG4 with
// minimal two's-complement little-endian bytes from protocol 2 on, the
// text form "L<digits>L\n" before.
func (p *pickler) saveBig(x *big.Int) {
	if x.IsInt64() && x.Int64() >= math.MinInt32 && x.Int64() <= math.MaxInt32 {
		p.saveInt(x.Int64())
		return
	}
	if p.proto < 2 {
		p.buf = append(p.buf, opLong)
		p.buf = append(p.buf, x.String()...)
		p.buf = append(p.buf, "L\n"...)
		return
	}
	b := twosComplementLE(x)
	if len(b) < 256 {
		p.buf = append(p.buf, opLong1, byte(len(b)))
	} else {
		p.buf = append(p.buf, opLong4)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(b)))
	}
	p.buf = append(p.buf, b...)
}

// twosComplementLE is the minimal little-endian two's complement of x != 0,
// as pickle's LONG1 carries it.
func twosComplementLE(x *big.Int) []byte {
	n := x.BitLen()/8 + 1
	v := new(big.Int).Set(x)
	if x.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	be := v.FillBytes(make([]byte, n))
	le := make([]byte, n)
	for i := range be {
		le[n-1-i] = be[i]
	}
	if x.Sign() < 0 && n > 1 && le[n-1] == 0xff && le[n-2]&0x80 != 0 {
		le = le[:n-1]
	}
	return le
}

func (p *pickler) saveStr(s string) {
	p.buf = append(p.buf, opBinUnicode)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(s)))
	p.buf = append(p.buf, s...)
}

// saveBytes writes bytes: SHORT_BINBYTES/BINBYTES from protocol 3 on;
// below it Python 3 has no bytes opcode and reduces them to
// __builtin__.bytes() (empty) or _codecs.encode(latin1 text, 'latin1').
func (p *pickler) saveBytes(v *Value) {
	switch {
	case p.proto >= 3 && len(v.s) < 256:
		p.buf = append(p.buf, opShortBinBytes, byte(len(v.s)))
		p.buf = append(p.buf, v.s...)
	case p.proto >= 3:
		p.buf = append(p.buf, opBinBytes)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(v.s)))
		p.buf = append(p.buf, v.s...)
	case v.s == "":
		p.buf = append(p.buf, "c__builtin__\nbytes\n"...)
		p.buf = append(p.buf, opEmptyTuple, opReduce)
	default:
		p.buf = append(p.buf, "c_codecs\nencode\n"...)
		p.buf = append(p.buf, opMark)
		p.saveStr(latin1Text(v.s))
		p.saveStr("latin1")
		p.buf = append(p.buf, opTuple, opReduce)
	}
	p.put(v)
}

// latin1Text decodes bytes as latin-1 into UTF-8 text.
func latin1Text(b string) string {
	s := make([]byte, 0, len(b)*2)
	for i := 0; i < len(b); i++ {
		s = utf8.AppendRune(s, rune(b[i]))
	}
	return string(s)
}

func (p *pickler) saveTuple(v *Value) error {
	n := len(v.items)
	if n == 0 {
		p.buf = append(p.buf, opEmptyTuple)
		return nil
	}
	if p.proto < 2 || n > 3 {
		p.buf = append(p.buf, opMark)
	}
	for _, it := range v.items {
		if err := p.save(it); err != nil {
			return err
		}
	}
	if p.proto < 2 || n > 3 {
		p.buf = append(p.buf, opTuple)
	} else {
		p.buf = append(p.buf, opTuple1+byte(n-1))
	}
	p.put(v)
	return nil
}

// saveList writes EMPTY_LIST then the items: one APPEND for a single
// item, otherwise MARK … APPENDS per batch of batchSize.
func (p *pickler) saveList(v *Value) error {
	p.buf = append(p.buf, opEmptyList)
	p.put(v)
	n := len(v.items)
	if n == 1 {
		if err := p.save(v.items[0]); err != nil {
			return err
		}
		p.buf = append(p.buf, opAppend)
		return nil
	}
	for start := 0; start < n; start += batchSize {
		p.buf = append(p.buf, opMark)
		if err := p.saveAll(v.items[start:min(n, start+batchSize)]); err != nil {
			return err
		}
		p.buf = append(p.buf, opAppends)
	}
	return nil
}

// saveDict writes EMPTY_DICT then the items: one SETITEM for a single
// item, otherwise MARK … SETITEMS per batch of batchSize, with CPython's
// quirk of a trailing empty batch when the size is a multiple of it.
func (p *pickler) saveDict(v *Value) error {
	p.buf = append(p.buf, opEmptyDict)
	p.put(v)
	n := len(v.items) / 2
	if n == 0 {
		return nil
	}
	if n == 1 {
		if err := p.saveAll(v.items); err != nil {
			return err
		}
		p.buf = append(p.buf, opSetItem)
		return nil
	}
	for start := 0; ; start += batchSize {
		end := min(n, start+batchSize)
		p.buf = append(p.buf, opMark)
		if err := p.saveAll(v.items[2*start : 2*end]); err != nil {
			return err
		}
		p.buf = append(p.buf, opSetItems)
		if end-start < batchSize {
			return nil
		}
	}
}

func (p *pickler) saveAll(items []*Value) error {
	for _, it := range items {
		if err := p.save(it); err != nil {
			return err
		}
	}
	return nil
}

// saveGlobal writes a reference to the class or function "module\nname",
// memoized by name as CPython memoizes the object it names.
func (p *pickler) saveGlobal(name string) {
	key := "g" + name
	if idx, ok := p.memo[key]; ok {
		p.get(idx)
		return
	}
	mod, n, _ := strings.Cut(name, "\n")
	if p.proto < 3 {
		mod, n = py2Name(mod, n)
	}
	p.buf = append(p.buf, opGlobal)
	p.buf = append(p.buf, mod...)
	p.buf = append(p.buf, '\n')
	p.buf = append(p.buf, n...)
	p.buf = append(p.buf, '\n')
	p.put(key)
}

// saveInstance writes an object as CPython's save_reduce does: the class
// and arguments then NEWOBJ, or the callable and arguments then REDUCE;
// the object into the memo; its list items and dict items in batches;
// BUILD with its state.
func (p *pickler) saveInstance(v *Value) error {
	o := v.made()
	switch {
	case o.recon && p.proto < 2:
		// As it was read, and as CPython writes it below protocol 2.
		p.saveGlobal("copyreg\n_reconstructor")
		if err := p.save(&Value{k: KindTuple, items: []*Value{
			{k: KindGlobal, s: v.s}, {k: KindGlobal, s: "builtins\nobject"}, {k: KindNone}}}); err != nil {
			return err
		}
		p.buf = append(p.buf, opReduce)
	case o.reduce:
		p.saveGlobal(v.s)
		if err := p.save(o.args); err != nil {
			return err
		}
		p.buf = append(p.buf, opReduce)
	default:
		p.saveGlobal(v.s)
		if err := p.save(o.args); err != nil {
			return err
		}
		p.buf = append(p.buf, opNewObj)
	}
	p.put(v)
	if err := p.batch(o.list, 1, opAppend, opAppends); err != nil {
		return err
	}
	if err := p.batch(o.dict, 2, opSetItem, opSetItems); err != nil {
		return err
	}
	if v.state != nil {
		if err := p.save(v.state); err != nil {
			return err
		}
		p.buf = append(p.buf, opBuild)
	}
	return nil
}

// batch writes the items added to an object, each of width values (1 for
// list items, 2 for key and value), as CPython's pickler writes items it
// gets from an iterator: MARK … multi per batch of batchSize, a lone
// last item with single instead, and no empty batch.
func (p *pickler) batch(items []*Value, width int, single, multi byte) error {
	n := len(items) / width
	for start := 0; start < n; start += batchSize {
		end := min(n, start+batchSize)
		if end-start == 1 {
			if err := p.saveAll(items[width*start : width*end]); err != nil {
				return err
			}
			p.buf = append(p.buf, single)
			return nil
		}
		p.buf = append(p.buf, opMark)
		if err := p.saveAll(items[width*start : width*end]); err != nil {
			return err
		}
		p.buf = append(p.buf, multi)
	}
	return nil
}
