package pyval

import (
	"errors"
	"fmt"
)

// MaxExtension is the longest extension a FileStorage transaction can
// hold (its header's 2-byte length field).
const MaxExtension = 1<<16 - 1

// ExtensionDict turns a stored transaction extension (empty, or a pickle
// of a dict) into the dict. Python 2 strings in it become text when they
// are ASCII and bytes otherwise, as ZODB's own unpickler (encoding='ASCII',
// errors='bytes') reads them; object identity is kept. Objects in it (a
// datetime, a set) are accepted and kept inert (UnpickleOptions.Objects),
// so that they can be pickled again.
func ExtensionDict(stored []byte) (*Value, error) {
	if len(stored) == 0 {
		return &Value{k: KindDict}, nil
	}
	v, err := UnpickleWith(stored, UnpickleOptions{Objects: true})
	if err != nil {
		return nil, err
	}
	if v.k != KindDict {
		return nil, fmt.Errorf("extension is a %v, not a dict", v.k)
	}
	return normalize(v, make(map[*Value]*Value)), nil
}

// ExtensionBytes returns the bytes Python FileStorage stores for a
// transaction's extension dict: nothing for None (or nil) or an empty dict,
// otherwise pickle.dumps(d, 3) of the dict (with Python 2 strings
// normalised as ExtensionDict does), the memo included. An extension
// longer than MaxExtension is an error.
func ExtensionBytes(dict *Value) ([]byte, error) {
	if dict == nil || dict.k == KindNone {
		return nil, nil
	}
	if dict.k != KindDict {
		return nil, fmt.Errorf("extension is a %v, not a dict", dict.k)
	}
	if len(dict.items) == 0 {
		return nil, nil
	}
	b, err := Pickle(normalize(dict, make(map[*Value]*Value)), PickleOptions{Protocol: 3, Max: MaxExtension})
	if errors.Is(err, ErrTooLong) {
		return nil, fmt.Errorf("extension pickles to more than FileStorage's %d bytes", MaxExtension)
	}
	if err != nil {
		return nil, fmt.Errorf("extension: %w", err)
	}
	return b, nil
}

// normalize returns v with Python 2 strings replaced by text (ASCII) or
// bytes, keeping object identity: a node shared in v is shared in the
// result. Cycles are kept as they are (the picklers refuse them).
func normalize(v *Value, seen map[*Value]*Value) *Value {
	if n, ok := seen[v]; ok {
		return n
	}
	switch v.k {
	case KindBinStr:
		n := &Value{k: KindBytes, s: v.s}
		if isASCII(v.s) {
			n.k = KindStr
		}
		seen[v] = n
		return n
	case KindTuple, KindList, KindDict:
		n := &Value{k: v.k, items: make([]*Value, len(v.items))}
		seen[v] = n
		for i, it := range v.items {
			n.items[i] = normalize(it, seen)
		}
		return n
	case KindObject:
		n := &Value{k: v.k, s: v.s}
		seen[v] = n
		if o := v.obj; o != nil {
			n.obj = &object{reduce: o.reduce, recon: o.recon, list: normalizeAll(o.list, seen), dict: normalizeAll(o.dict, seen)}
			if o.args != nil {
				n.obj.args = normalize(o.args, seen)
			}
		}
		if v.state != nil {
			n.state = normalize(v.state, seen)
		}
		return n
	}
	seen[v] = v
	return v
}

func normalizeAll(vs []*Value, seen map[*Value]*Value) []*Value {
	if vs == nil {
		return nil
	}
	n := make([]*Value, len(vs))
	for i, v := range vs {
		n[i] = normalize(v, seen)
	}
	return n
}
