package zrsproto

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// Pickle opcodes the encoders emit.
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
	opLong1         = '\x8a'
	opLong4         = '\x8b'
	opTuple1        = '\x85'
	opNewTrue       = '\x88'
	opNewFalse      = '\x89'
)

// batchSize is how many list items or dict entries CPython's pickler puts
// between one MARK and its APPENDS/SETITEMS.
const batchSize = 1000

// pickler writes a value tree the way CPython's C pickler does, in one of
// two dialects:
//
//   - protocol 1 in "fast" mode (no memo), with Python 3's protocol-1
//     spellings for bytes; this is the zrs2.x control message format;
//   - protocol 3 with the memo, which is how Python ZODB stores a
//     transaction's extension dict.
//
// Containers reachable from themselves are refused (fast mode cannot
// express them, and no real extension has one). max bounds the output so
// a value tree with shared subtrees cannot expand without limit.
type pickler struct {
	buf    []byte
	proto  int
	memo   map[any]int // protocol 3 only: identity → memo index
	active map[*value]bool
	max    int
}

func newPickler(proto, max int) *pickler {
	p := &pickler{proto: proto, max: max, active: make(map[*value]bool)}
	if proto >= 2 {
		p.memo = make(map[any]int)
		p.buf = append(p.buf, opProto, byte(proto))
	}
	return p
}

// pickle returns the complete pickle of v, STOP included.
func (p *pickler) pickle(v *value) ([]byte, error) {
	if err := p.save(v); err != nil {
		return nil, err
	}
	p.buf = append(p.buf, opStop)
	return p.buf, nil
}

func (p *pickler) save(v *value) error {
	if len(p.buf) > p.max {
		return fmt.Errorf("pickle longer than %d bytes", p.max)
	}
	switch v.k {
	case kNone:
		p.buf = append(p.buf, opNone)
	case kBool:
		p.saveBool(v.b)
	case kInt:
		p.saveInt(v.i)
	case kBigInt:
		p.saveBig(v.big)
	case kFloat:
		p.buf = append(p.buf, opBinFloat)
		p.buf = binary.BigEndian.AppendUint64(p.buf, math.Float64bits(v.f))
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

func (p *pickler) saveObject(v *value) error {
	switch v.k {
	case kStr:
		p.saveStr(v.s)
		p.put(v)
	case kBytes:
		p.saveBytes(v)
	case kTuple, kList, kDict:
		if p.active[v] {
			return fmt.Errorf("cannot pickle a %v that contains itself", v.k)
		}
		p.active[v] = true
		defer delete(p.active, v)
		switch v.k {
		case kTuple:
			return p.saveTuple(v)
		case kList:
			return p.saveList(v)
		default:
			return p.saveDict(v)
		}
	default:
		return fmt.Errorf("cannot pickle a %v", v.k)
	}
	return nil
}

// identity is the memo key of an object: the value itself for the objects
// CPython shares (see value.singletonKey), the node otherwise.
func identity(v *value) any {
	if k := v.singletonKey(); k != "" {
		return k
	}
	return v
}

func (p *pickler) put(v *value) {
	if p.memo == nil {
		return
	}
	idx := len(p.memo)
	p.memo[identity(v)] = idx
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

// twosComplementLE is Python's pickle.encode_long for x != 0.
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
func (p *pickler) saveBytes(v *value) {
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

func (p *pickler) saveTuple(v *value) error {
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
func (p *pickler) saveList(v *value) error {
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
		for _, it := range v.items[start:min(n, start+batchSize)] {
			if err := p.save(it); err != nil {
				return err
			}
		}
		p.buf = append(p.buf, opAppends)
	}
	return nil
}

// saveDict writes EMPTY_DICT then the items: one SETITEM for a single
// item, otherwise MARK … SETITEMS per batch of batchSize, with CPython's
// quirk of a trailing empty batch when the size is a multiple of it.
func (p *pickler) saveDict(v *value) error {
	p.buf = append(p.buf, opEmptyDict)
	p.put(v)
	n := v.dictLen()
	if n == 0 {
		return nil
	}
	if n == 1 {
		if err := p.saveItems(v.items); err != nil {
			return err
		}
		p.buf = append(p.buf, opSetItem)
		return nil
	}
	for start := 0; ; start += batchSize {
		end := min(n, start+batchSize)
		p.buf = append(p.buf, opMark)
		if err := p.saveItems(v.items[2*start : 2*end]); err != nil {
			return err
		}
		p.buf = append(p.buf, opSetItems)
		if end-start < batchSize {
			return nil
		}
	}
}

func (p *pickler) saveItems(items []*value) error {
	for _, it := range items {
		if err := p.save(it); err != nil {
			return err
		}
	}
	return nil
}
