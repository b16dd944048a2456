package pyval_test

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// TestUnpickleErrors: malformed or refused input is an *Error naming the
// byte offset of the opcode at fault.
func TestUnpickleErrors(t *testing.T) {
	for name, c := range map[string]struct {
		p   string
		pos int
	}{
		"empty":            {"", 0},
		"no stop":          {"N", 1},
		"trailing bytes":   {"N.N", 2},
		"two values":       {"NN.", 2},
		"unknown opcode":   {"N\xff.", 1},
		"unknown global":   {"cos\nsystem\n(X\x02\x00\x00\x00lst\x52.", 20},
		"bare global":      {"\x80\x03cbuiltins\nprint\n\x85.", 18},
		"global as result": {"cbuiltins\nprint\n.", 16},
		"stack global":     {"\x80\x04\x8c\x02os\x8c\x06system\x93)R.", 16},
		"newobj unlisted":  {"\x80\x03cZopeUndo.Prefix\nPrefix\n)\x81.", 27},
		"build on a list":  {"]}b.", 2},
		"bad utf8":         {"X\x01\x00\x00\x00\xff.", 0},
		"huge length":      {"X\xff\xff\xff\x7f.", 0},
		"huge length8":     {"\x8e\xff\xff\xff\xff\xff\xff\xff\xff.", 0},
		"memo miss":        {"h\x05.", 0},
		"unhashable key":   {"}]Ns.", 3},
		"latin1 overflow":  {"c_codecs\nencode\n(X\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1tR.", 36},
		"stack underflow":  {"t.", 0},
		"append to tuple":  {")Na.", 2},
		"protocol 6":       {"\x80\x06N.", 0},
		"unclosed mark":    {"(K\x01\x85.", 4},
		"bad STRING":       {"S'abc\n.", 0},
		"bad UNICODE":      {"Vab\\u12\n.", 0},
	} {
		_, err := pyval.Unpickle([]byte(c.p))
		var pe *pyval.Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v", name, err)
			continue
		}
		if pe.Pos != c.pos {
			t.Errorf("%s: error at byte %d, want %d: %v", name, pe.Pos, c.pos, err)
		}
	}
}

// TestUnpickleDialects: the same value pickled by other protocols and
// Pythons decodes alike.
func TestUnpickleDialects(t *testing.T) {
	want := pyval.Tuple(pyval.Str("k"), pyval.Bytes([]byte("\x00\xff")), pyval.Int(1<<40), pyval.Bool(true))
	for name, p := range map[string]string{
		"protocol 3 memo":  "\x80\x03(X\x01\x00\x00\x00kq\x00C\x02\x00\xffq\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x88tq\x02.",
		"protocol 1":       "(X\x01\x00\x00\x00kc_codecs\nencode\n(X\x03\x00\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1tRL1099511627776L\nI01\nt.",
		"protocol 4 frame": "\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00(\x8c\x01k\x94C\x02\x00\xff\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x88t\x94.",
		"protocol 0":       "(Vk\np0\nc_codecs\nencode\np1\n(V\x00\xff\nVlatin1\ntRL1099511627776L\nI01\nt.",
		"bytes8 unicode8":  "(\x8d\x01\x00\x00\x00\x00\x00\x00\x00k\x8e\x02\x00\x00\x00\x00\x00\x00\x00\x00\xff\x8a\x06\x00\x00\x00\x00\x00\x01\x88t.",
	} {
		got, err := pyval.Unpickle([]byte(p))
		if err != nil || !pyval.Equal(got, want) {
			t.Errorf("%s: %v, %v", name, got, err)
		}
	}
	p0, err := pyval.Unpickle([]byte("(S'a\\'\\x00\\n\\101\\\\'\nVx\\u20ac\\U0001f600\\udc80\xe9\nt."))
	if err != nil || p0.String() != `('a\'\x00\nA\\', 'x€😀\xed\xb2\x80é')` {
		t.Errorf("protocol 0 strings: %v, %v", p0, err)
	}
	py2, err := pyval.Unpickle([]byte("U\x03abc."))
	if s, ok := py2.AsText(); err != nil || !ok || py2.Kind() != pyval.KindBinStr || s != "abc" {
		t.Errorf("Python 2 str: %v %v", py2, err)
	}
	empty, err := pyval.Unpickle([]byte("c__builtin__\nbytes\n)R."))
	if err != nil || !pyval.Equal(empty, pyval.Bytes(nil)) {
		t.Errorf("bytes(): %v %v", empty, err)
	}
}

// undoInfoPrefix is undoInfo(0, 20, {'user_name': Prefix('/app')}) as a
// ZEO 6 client sends it, pickled by zodbpickle (protocol 3, fast) with
// ZopeUndo 6 installed.
const undoInfoPrefix = "8003284b07895808000000756e646f496e666f4b004b147d5809000000757365725f6e616d65635a6f7065556e646f2e5072656669780a5072656669780a29817d2858060000006c656e6774684b025804000000706174685d28580000000058030000006170706575627387742e"

// TestUnpickleObjects: instances of listed classes decode to inert
// objects that re-pickle to the same bytes; unlisted ones are refused.
func TestUnpickleObjects(t *testing.T) {
	p, _ := hex.DecodeString(undoInfoPrefix)
	if _, err := pyval.Unpickle(p); err == nil {
		t.Fatal("Prefix accepted without being listed")
	}
	v, err := pyval.UnpickleWith(p, pyval.UnpickleOptions{Classes: []string{"ZopeUndo.Prefix.Prefix"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := v.Items()[3].Items()[2]
	prefix, ok := spec.Lookup("user_name")
	if !ok || prefix.Kind() != pyval.KindObject || prefix.Class() != "ZopeUndo.Prefix.Prefix" {
		t.Fatalf("spec = %v", spec)
	}
	if got := prefix.State().String(); got != `{'length': 2, 'path': ['', 'app']}` {
		t.Errorf("state = %s", got)
	}
	again, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true})
	if err != nil || hex.EncodeToString(again) != undoInfoPrefix {
		t.Errorf("re-pickled: %x, %v", again, err)
	}
	// Below protocol 2 the object is still written with NEWOBJ (see
	// Pickle), and reads back the same.
	p1, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 1, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	back, err := pyval.UnpickleWith(p1, pyval.UnpickleOptions{Classes: []string{"ZopeUndo.Prefix.Prefix"}})
	if err != nil || !pyval.Equal(back, v) {
		t.Errorf("protocol 1 %q read back as %v, %v", p1, back, err)
	}
}

// TestUnpickleMaxValues: MaxValues counts every push, MARK and memo PUT,
// refuses the opcode that goes past it with an *Error at that opcode
// wrapping ErrTooManyValues, and zero means no bound.
func TestUnpickleMaxValues(t *testing.T) {
	for name, c := range map[string]struct {
		p     string
		count int // what the pickle counts
	}{
		"pushes":   {"(NNNt.", 5},               // MARK, 3 None, the tuple
		"memo get": {"N\x94h\x00h\x00\x87.", 5}, // None, PUT, 2 GETs, the tuple
		"dup":      {"N22\x87.", 4},             // None, 2 DUPs, the tuple
		"marks":    {"((((1111N.", 5},
	} {
		opts := pyval.UnpickleOptions{MaxValues: c.count}
		if _, err := pyval.UnpickleWith([]byte(c.p), opts); err != nil {
			t.Errorf("%s: refused at its own count %d: %v", name, c.count, err)
		}
		if _, err := pyval.Unpickle([]byte(c.p)); err != nil {
			t.Errorf("%s: refused without a limit: %v", name, err)
		}
		opts.MaxValues--
		_, err := pyval.UnpickleWith([]byte(c.p), opts)
		var pe *pyval.Error
		if !errors.As(err, &pe) || !errors.Is(err, pyval.ErrTooManyValues) {
			t.Errorf("%s: limit %d: err = %v", name, opts.MaxValues, err)
			continue
		}
		if want := len(c.p) - 2; pe.Pos != want {
			t.Errorf("%s: refused at byte %d, want %d (the last opcode): %v", name, pe.Pos, want, err)
		}
	}
}
