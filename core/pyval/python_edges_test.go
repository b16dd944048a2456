package pyval_test

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

func edgeHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// A protocol-0 FLOAT "nan" decodes in CPython to float('nan') (bits
// 7ff8000000000000), which pickle.dumps(pickle.loads(p), 3) writes out;
// Go's strconv.ParseFloat("nan") carries a payload bit.
func TestNaNTextFloatIsPythons(t *testing.T) {
	// pickle.dumps({'x': float('nan')}, 0)
	p := []byte("(dp0\nVx\np1\nFnan\ns.")
	want := edgeHex("80037d7100580100000078710147" + "7ff8000000000000" + "732e") // pickle.dumps(pickle.loads(p), 3)
	v, err := pyval.Unpickle(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pyval.ExtensionBytes(v)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("ExtensionBytes = %x, %v\nCPython writes %x", got, err, want)
	}
}

// A Python dict may hold several NaN keys (distinct objects are distinct
// keys): decoding keeps them all, and re-pickling writes what Python
// writes. The bytes are CPython 3.11's.
func TestNaNKeysAreDistinct(t *testing.T) {
	// nan1, nan2 = float('nan'), float('nan'); pickle.dumps({nan1: 1, nan2: 2}, 3)
	p := edgeHex("80037d710028477ff80000000000004b01477ff80000000000004b02752e")
	v, err := pyval.Unpickle(p)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 2 {
		t.Errorf("decoded dict has %d entries, Python's has 2", v.Len())
	}
	got, err := pyval.ExtensionBytes(v)
	if err != nil || !bytes.Equal(got, p) {
		t.Errorf("ExtensionBytes = %x, %v\nCPython/zodbpickle write %x", got, err, p)
	}
}

// In raw-unicode-escape a \u escape counts only after an odd number of
// backslashes: CPython decodes two backslashes and u0041 to those seven
// characters.
func TestRawUnicodeEscapeEvenBackslashes(t *testing.T) {
	v, err := pyval.Unpickle([]byte("V\\\\u0041\n."))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.AsText(); s != `\\u0041` {
		t.Errorf("decoded %q, CPython decodes %q", s, `\\u0041`)
	}
}

// Protocol-0 float text is read as CPython's pickle reads it: NaN with one
// sign and any-case infinities accepted, hexadecimal and doubled signs
// refused.
func TestTextFloatsAsCPython(t *testing.T) {
	for text, bits := range map[string]uint64{
		"nan": 0x7ff8000000000000, "-nan": 0xfff8000000000000, "+NaN": 0x7ff8000000000000,
		"inf": 0x7ff0000000000000, "-Infinity": 0xfff0000000000000, "1.5": 0x3ff8000000000000,
	} {
		v, err := pyval.Unpickle([]byte("F" + text + "\n."))
		f, ok := v.AsFloat()
		if err != nil || !ok || math.Float64bits(f) != bits {
			t.Errorf("F%s: %v %v, want bits %016x", text, v, err, bits)
		}
	}
	for _, text := range []string{"0x1p3", "1_0", "--nan", "+-nan", "++inf"} {
		if v, err := pyval.Unpickle([]byte("F" + text + "\n.")); err == nil {
			t.Errorf("F%s decoded to %v; CPython refuses it", text, v)
		}
	}
}
