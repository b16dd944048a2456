package pyval

import "math"

// Equal reports whether a and b are the same tree of values: the same
// kinds (so 1, 1.0 and True differ), equal contents, dict entries in the
// same order, floats with the same bits, objects made the same way.
// Sharing is not compared, nor whether an object was read from
// copyreg._reconstructor or from NEWOBJ (the same object). Meant
// for tests; values nested deeper than MaxDepth are never equal.
func Equal(a, b *Value) bool { return equal(a, b, 0) }

func equal(a, b *Value, depth int) bool {
	if a == nil || b == nil {
		return a == b
	}
	if depth > MaxDepth || a.k != b.k || a.b != b.b || a.i != b.i || a.s != b.s ||
		math.Float64bits(a.f) != math.Float64bits(b.f) || len(a.items) != len(b.items) ||
		(a.big == nil) != (b.big == nil) || (a.big != nil && a.big.Cmp(b.big) != 0) ||
		(a.state == nil) != (b.state == nil) {
		return false
	}
	if !equalAll(a.items, b.items, depth) || (a.state != nil && !equal(a.state, b.state, depth+1)) {
		return false
	}
	ao, bo := a.made(), b.made()
	return ao.reduce == bo.reduce && equal(ao.args, bo.args, depth+1) &&
		equalAll(ao.list, bo.list, depth) && equalAll(ao.dict, bo.dict, depth)
}

func equalAll(a, b []*Value, depth int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equal(a[i], b[i], depth+1) {
			return false
		}
	}
	return true
}
