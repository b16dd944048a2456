package pyval

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// setItems adds key/value pairs to dict d with Python's semantics: a key
// equal to an existing one replaces that entry's value in place.
func (d *Value) setItems(kv []*Value) error { return d.setItemsBudget(kv, nil) }

// setItemsBudget is setItems drawing the bytes of the keys' canonical
// forms from *total as well, when total is not nil: a pickle whose keys
// are tuples sharing long memoized strings would otherwise build up to
// maxKeyLen bytes per key from a few bytes of input.
func (d *Value) setItemsBudget(kv []*Value, total *int) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("odd number of items (%d) for a dict", len(kv))
	}
	if d.index == nil {
		if err := d.reindex(len(kv) / 2); err != nil {
			return err
		}
	}
	for i := 0; i < len(kv); i += 2 {
		budget := maxKeyLen
		if total != nil {
			budget = min(budget, *total)
		}
		start := budget
		ck, err := canonicalKey(kv[i], &budget)
		if total != nil {
			*total -= start - budget
		}
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

// reindex builds the key index of a dict whose items were set directly.
func (d *Value) reindex(extra int) error {
	d.index = make(map[string]int, len(d.items)/2+extra)
	for j := 0; j+1 < len(d.items); j += 2 {
		budget := maxKeyLen
		ck, err := canonicalKey(d.items[j], &budget)
		if err != nil {
			return err
		}
		d.index[ck] = j
	}
	return nil
}

// maxKeyLen bounds the canonical form of one dict key, so a key built from
// shared tuples (a memo DAG) cannot expand exponentially.
const maxKeyLen = 1 << 16

// canonicalKey returns a string equal for two keys exactly when Python
// considers them the same dict key, or an error for unhashable keys. A
// NaN equals nothing, itself included, but Python finds a key by identity
// first: NaN keys are the same key only when they are the same object
// (one value reached twice through the memo).
func canonicalKey(v *Value, budget *int) (string, error) {
	if *budget--; *budget < 0 { // before recursing: bounds the depth too
		return "", fmt.Errorf("dict key too large")
	}
	ck, err := canonicalKey1(v, budget)
	if err == nil {
		if *budget -= len(ck); *budget < 0 {
			err = fmt.Errorf("dict key too large")
		}
	}
	return ck, err
}

func canonicalKey1(v *Value, budget *int) (string, error) {
	switch v.k {
	case KindNone:
		return "N", nil
	case KindBool:
		if v.b {
			return "n1", nil
		}
		return "n0", nil
	case KindInt:
		return "n" + strconv.FormatInt(v.i, 10), nil
	case KindBigInt:
		return "n" + v.big.String(), nil
	case KindFloat:
		if math.IsNaN(v.f) {
			return fmt.Sprintf("nan%p", v), nil
		}
		if v.f == math.Trunc(v.f) && math.Abs(v.f) < 1e300 {
			bf := new(big.Float).SetFloat64(v.f)
			bi, _ := bf.Int(nil)
			return "n" + bi.String(), nil
		}
		return "f" + strconv.FormatUint(math.Float64bits(v.f), 16), nil
	case KindStr:
		return "s" + v.s, nil
	case KindBytes:
		return "b" + v.s, nil
	case KindBinStr:
		if isASCII(v.s) {
			return "s" + v.s, nil
		}
		return "b" + v.s, nil
	case KindTuple:
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
	case KindGlobal:
		return "g" + v.s, nil
	case KindObject:
		// By identity, as a Python object without __eq__ is: a pickle
		// CPython wrote holds no two equal keys in one dict, so each
		// object key is its own.
		return fmt.Sprintf("o%p", v), nil
	}
	return "", fmt.Errorf("unhashable dict key of type %v", v.k)
}

// dotted turns the "module\nname" of a global into "module.name".
func dotted(s string) string { return strings.Replace(s, "\n", ".", 1) }
