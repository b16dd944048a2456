package pyval

import "math"

// Equal reports whether a and b are the same tree of values: the same
// kinds (so 1, 1.0 and True differ), equal contents, dict entries in the
// same order, floats with the same bits, objects made the same way.
// Sharing is not compared, nor whether an object was read from
// copyreg._reconstructor or from NEWOBJ (the same object): a
// _reconstructor call the unpickler kept as such (read at protocol 2 or
// later, where CPython does not write one by itself) equals the object it
// records for the same call read below protocol 2. Meant for tests;
// values nested deeper than MaxDepth are never equal.
func Equal(a, b *Value) bool { return equal(a, b, 0) }

func equal(a, b *Value, depth int) bool {
	if a == nil || b == nil {
		return a == b
	}
	a, b = asReconstructed(a), asReconstructed(b)
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

// asReconstructed returns, for a REDUCE of copyreg._reconstructor with the
// arguments unpickler.reduced recognizes below protocol 2, the object it
// records for them (with v's state and items); v itself otherwise.
func asReconstructed(v *Value) *Value {
	if v.k != KindObject || v.s != "copyreg\n_reconstructor" || v.obj == nil || !v.obj.reduce || v.obj.args == nil {
		return v
	}
	a := v.obj.args.items
	if len(a) != 3 || a[0].k != KindGlobal || a[1].k != KindGlobal {
		return v
	}
	o := &object{list: v.obj.list, dict: v.obj.dict}
	switch {
	case a[1].s == "builtins\nobject" && a[2].k == KindNone:
		o.recon = true
	case a[1].s == "builtins\ntuple" && a[2].k == KindTuple:
		o.args = a[2]
	default:
		return v
	}
	return &Value{k: KindObject, s: a[0].s, obj: o, state: v.state}
}
