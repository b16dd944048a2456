package zrsproto

import (
	"math/big"
	"unicode/utf8"
)

// kind is the Python type of a decoded pickle value.
type kind uint8

const (
	kNone   kind = iota
	kBool        // b
	kInt         // i
	kBigInt      // big (outside int64)
	kFloat       // f
	kStr         // s: text, as the UTF-8 bytes the pickle carried (lone surrogates allowed)
	kBytes       // s: bytes
	kBinStr      // s: a Python 2 str (SHORT_BINSTRING/BINSTRING/STRING): bytes or text depending on use
	kTuple       // items
	kList        // items
	kDict        // items: key0, value0, key1, value1, ... in insertion order
	kGlobal      // s: "module\nname" (only as the callable of a REDUCE)
)

var kindNames = [...]string{"None", "bool", "int", "int", "float", "str", "bytes", "str (Python 2)", "tuple", "list", "dict", "global"}

func (k kind) String() string { return kindNames[k] }

// value is one object of a decoded pickle. Pointers give object identity:
// two references to the same *value are the same Python object (a memo
// GET, or a container referring to itself), which matters when the
// protocol-3 encoder decides between storing and re-fetching an object.
type value struct {
	k     kind
	b     bool
	i     int64
	big   *big.Int
	f     float64
	s     string
	items []*value
	index map[string]int // dicts being decoded: canonical key → position in items
}

func (v *value) isStrLike() bool { return v.k == kStr || v.k == kBytes || v.k == kBinStr }

// asBytes returns the bytes of a bytes or Python 2 str value.
func (v *value) asBytes() ([]byte, bool) {
	if v.k == kBytes || v.k == kBinStr {
		return []byte(v.s), true
	}
	return nil, false
}

// asText returns a text or Python 2 str value as a string.
func (v *value) asText() (string, bool) {
	if v.k == kStr || v.k == kBinStr {
		return v.s, true
	}
	return "", false
}

// dictLen is the number of items of a dict value.
func (v *value) dictLen() int { return len(v.items) / 2 }

// singletonKey returns a non-empty key when CPython would hand out one
// shared object for every occurrence of this value after unpickling: the
// empty string, one-character strings below U+0100, and bytes of length 0
// or 1. Those get memo GETs when pickled again even though the message
// that carried them never shared them.
func (v *value) singletonKey() string {
	switch v.k {
	case kStr:
		if v.s == "" {
			return "s"
		}
		if r, n := utf8.DecodeRuneInString(v.s); n == len(v.s) && r != utf8.RuneError && r < 0x100 {
			return "s" + v.s
		}
	case kBytes:
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
