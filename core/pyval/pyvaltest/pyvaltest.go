// Package pyvaltest reads the typed-JSON notation the vector generators
// under tests/vectors/ use to write Python values, so Go tests can build
// the *pyval.Value a vector stands for. It exists because plain JSON
// cannot tell a tuple from a list, bytes from text, or an int from a
// float; the notation is small enough that a hand-written reader is
// simpler than any library.
//
// The notation: null, true, false; "text" (a str); [..] (a list);
// {"i": "123"} (an int of any size); {"f": "<16 hex digits>"} (a float,
// its IEEE 754 bits big-endian); {"b": "<hex>"} (bytes); {"t": [..]} (a
// tuple); {"d": [[key, value], ..]} (a dict, in insertion order).
package pyvaltest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"

	"github.com/zrs-replication/zrs/core/pyval"
)

// FromJSON parses one value in the typed notation.
func FromJSON(data []byte) (*pyval.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the value")
	}
	return convert(x)
}

func convert(x any) (*pyval.Value, error) {
	switch x := x.(type) {
	case nil:
		return pyval.None(), nil
	case bool:
		return pyval.Bool(x), nil
	case string:
		return pyval.Str(x), nil
	case []any:
		items, err := convertAll(x)
		return pyval.List(items...), err
	case map[string]any:
		if len(x) != 1 {
			return nil, fmt.Errorf("tagged value with %d keys", len(x))
		}
		for tag, body := range x {
			return tagged(tag, body)
		}
	}
	return nil, fmt.Errorf("unexpected JSON %T", x)
}

func tagged(tag string, body any) (*pyval.Value, error) {
	switch tag {
	case "i", "f", "b":
		s, ok := body.(string)
		if !ok {
			return nil, fmt.Errorf("%q wants a string, got %T", tag, body)
		}
		return scalar(tag, s)
	case "t", "d":
		list, ok := body.([]any)
		if !ok {
			return nil, fmt.Errorf("%q wants a list, got %T", tag, body)
		}
		items, err := convertAll(list)
		if err != nil || tag == "t" {
			return pyval.Tuple(items...), err
		}
		return dict(items)
	}
	return nil, fmt.Errorf("unknown tag %q", tag)
}

func scalar(tag, s string) (*pyval.Value, error) {
	switch tag {
	case "i":
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("bad int %q", s)
		}
		if n.IsInt64() {
			return pyval.Int(n.Int64()), nil
		}
		if n.IsUint64() {
			return pyval.Uint(n.Uint64()), nil
		}
		return pyval.BigInt(n), nil
	case "f":
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 8 {
			return nil, fmt.Errorf("bad float bits %q", s)
		}
		return pyval.Float(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
	default:
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("bad bytes %q: %w", s, err)
		}
		return pyval.Bytes(b), nil
	}
}

// dict builds a dict from converted [key, value] pairs (each a list).
func dict(pairs []*pyval.Value) (v *pyval.Value, err error) {
	var kv []*pyval.Value
	for _, p := range pairs {
		if p.Kind() != pyval.KindList || p.Len() != 2 {
			return nil, fmt.Errorf("dict entry is not a [key, value] pair: %v", p)
		}
		kv = append(kv, p.Items()...)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("dict: %v", r)
		}
	}()
	return pyval.Dict(kv...), nil
}

func convertAll(xs []any) ([]*pyval.Value, error) {
	out := make([]*pyval.Value, len(xs))
	for i, x := range xs {
		v, err := convert(x)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
