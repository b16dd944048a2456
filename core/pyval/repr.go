package pyval

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// reprMax is the longest String returns before cutting with "...".
const reprMax = 200

// String renders v like Python's repr, cut to about 200 bytes, for error
// messages and logs. Python 2 strings show as '...' with \x escapes for
// non-ASCII bytes; a container inside itself shows as ... as in Python.
func (v *Value) String() string {
	if v == nil {
		return "<nil>"
	}
	r := reprWriter{active: make(map[*Value]bool)}
	r.value(v)
	if r.full {
		return r.sb.String()[:reprMax] + "..."
	}
	return r.sb.String()
}

type reprWriter struct {
	sb     strings.Builder
	full   bool
	active map[*Value]bool
}

func (r *reprWriter) write(s string) {
	if r.full {
		return
	}
	r.sb.WriteString(s)
	if r.sb.Len() > reprMax {
		r.full = true
	}
}

func (r *reprWriter) value(v *Value) {
	if r.full {
		return
	}
	switch v.k {
	case KindNone:
		r.write("None")
	case KindBool:
		r.write(map[bool]string{true: "True", false: "False"}[v.b])
	case KindInt:
		r.write(strconv.FormatInt(v.i, 10))
	case KindBigInt:
		r.write(v.big.String())
	case KindFloat:
		r.write(floatRepr(v.f))
	case KindStr:
		r.write(quote(v.s, false))
	case KindBytes:
		r.write("b" + quote(v.s, true))
	case KindBinStr:
		r.write(quote(v.s, true))
	case KindGlobal:
		r.write("<global " + dotted(v.s) + ">")
	default:
		r.container(v)
	}
}

func (r *reprWriter) container(v *Value) {
	if r.active[v] || len(r.active) >= MaxDepth {
		r.write("...")
		return
	}
	r.active[v] = true
	defer delete(r.active, v)
	switch v.k {
	case KindTuple:
		r.write("(")
		r.items(v.items, ", ")
		if len(v.items) == 1 {
			r.write(",")
		}
		r.write(")")
	case KindList:
		r.write("[")
		r.items(v.items, ", ")
		r.write("]")
	case KindDict:
		r.write("{")
		for i := 0; i+1 < len(v.items) && !r.full; i += 2 {
			if i > 0 {
				r.write(", ")
			}
			r.value(v.items[i])
			r.write(": ")
			r.value(v.items[i+1])
		}
		r.write("}")
	case KindObject:
		r.write("<" + dotted(v.s) + " object")
		if v.state != nil {
			r.write(" ")
			r.value(v.state)
		}
		r.write(">")
	}
}

func (r *reprWriter) items(items []*Value, sep string) {
	for i, it := range items {
		if r.full {
			return
		}
		if i > 0 {
			r.write(sep)
		}
		r.value(it)
	}
}

// floatRepr is Python's repr of a float: shortest round-trip digits,
// always with a '.' or an exponent.
func floatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // shortest digits: d.ddde±XX
	_, exp, _ := strings.Cut(e, "e")
	if x, _ := strconv.Atoi(exp); x < -4 || x >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// quote renders s in single quotes with Python's escapes; raw treats it
// as bytes (every byte ≥ 0x80 escaped), otherwise as UTF-8 text.
func quote(s string, raw bool) string {
	var sb strings.Builder
	sb.WriteByte('\'')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		case c < 0x80 || raw:
			sb.WriteString(`\x` + strconv.FormatUint(uint64(c)|0x100, 16)[1:])
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !unicode.IsPrint(r) {
				sb.WriteString(`\x` + strconv.FormatUint(uint64(c)|0x100, 16)[1:])
				n = 1
			} else {
				sb.WriteRune(r)
			}
			i += n
			continue
		}
		i++
	}
	sb.WriteByte('\'')
	return sb.String()
}
