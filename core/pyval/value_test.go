package pyval_test

import (
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

func TestConstructorsAndAccessors(t *testing.T) {
	if k := pyval.Uint(math.MaxInt64).Kind(); k != pyval.KindInt {
		t.Errorf("Uint(MaxInt64) is %v", k)
	}
	big := pyval.Uint(math.MaxUint64)
	if big.Kind() != pyval.KindBigInt {
		t.Errorf("Uint(MaxUint64) is %v", big.Kind())
	}
	if u, ok := big.AsUint(); !ok || u != math.MaxUint64 {
		t.Errorf("AsUint = %d, %v", u, ok)
	}
	if _, ok := big.AsInt(); ok {
		t.Error("a big int fits AsInt")
	}
	if _, ok := pyval.Int(-1).AsUint(); ok {
		t.Error("-1 fits AsUint")
	}
	if i, ok := pyval.Bool(true).AsInt(); !ok || i != 1 {
		t.Errorf("True.AsInt = %d, %v", i, ok)
	}
	for v, want := range map[*pyval.Value]bool{pyval.Int(2): true, pyval.Int(0): false, pyval.None(): false, pyval.Bool(true): true} {
		if b, ok := v.AsBool(); !ok || b != want {
			t.Errorf("%v.AsBool = %v, %v", v, b, ok)
		}
	}
	if _, ok := pyval.Str("x").AsBool(); ok {
		t.Error("str has AsBool")
	}
	if f, ok := pyval.Int(3).AsFloat(); !ok || f != 3 {
		t.Errorf("AsFloat = %v, %v", f, ok)
	}
	if b, ok := pyval.Bytes([]byte("ab")).AsBytes(); !ok || string(b) != "ab" {
		t.Errorf("AsBytes = %q, %v", b, ok)
	}
	if _, ok := pyval.Str("ab").AsBytes(); ok {
		t.Error("str has AsBytes")
	}
	if _, ok := pyval.Bytes(nil).AsText(); ok {
		t.Error("bytes has AsText")
	}
	tup := pyval.Tuple(pyval.Int(1), pyval.None())
	if tup.Len() != 2 || len(tup.Items()) != 2 || tup.DictItems() != nil || !tup.Items()[1].IsNone() {
		t.Errorf("tuple accessors: %v", tup)
	}
	if pyval.Str("é").Len() != 2 || pyval.Int(5).Len() != 0 || pyval.Int(5).Items() != nil {
		t.Error("Len/Items of scalars")
	}
}

func TestDict(t *testing.T) {
	d := pyval.Dict(pyval.Str("a"), pyval.Int(1), pyval.Int(1), pyval.Str("int"), pyval.Bytes([]byte("a")), pyval.None())
	d.SetItem(pyval.Float(1.0), pyval.Str("float"))    // 1.0 == 1: replaces in place
	d.SetItem(pyval.Bool(true), pyval.Str("bool"))     // True == 1 too
	d.SetItem(pyval.Str("b"), pyval.Int(2))            // appended
	d.SetItem(pyval.Tuple(pyval.Int(1)), pyval.Int(3)) // tuples are hashable
	want := `{'a': 1, 1: 'bool', b'a': None, 'b': 2, (1,): 3}`
	if got := d.String(); got != want {
		t.Errorf("dict = %s\nwant %s", got, want)
	}
	if d.Len() != 5 || len(d.DictItems()) != 10 {
		t.Errorf("Len %d", d.Len())
	}
	if v, ok := d.Lookup("b"); !ok || v.String() != "2" {
		t.Errorf("Lookup(b) = %v, %v", v, ok)
	}
	if _, ok := d.Lookup("missing"); ok {
		t.Error("Lookup(missing)")
	}
	for name, f := range map[string]func(){
		//lint:ignore SA5012 the odd count is what is tested
		"odd":        func() { pyval.Dict(pyval.None()) },
		"unhashable": func() { pyval.Dict(pyval.List(), pyval.None()) },
		"not a dict": func() { pyval.List().SetItem(pyval.None(), pyval.None()) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestString(t *testing.T) {
	for v, want := range map[*pyval.Value]string{
		pyval.None():                  "None",
		pyval.Float(1):                "1.0",
		pyval.Float(1e16):             "1e+16",
		pyval.Float(0.1):              "0.1",
		pyval.Float(math.Inf(-1)):     "-inf",
		pyval.Float(1e-5):             "1e-05",
		pyval.Str("it's\n\x00é€"):     `'it\'s\n\x00é€'`,
		pyval.Bytes([]byte("a\xff'")): `b'a\xff\''`,
		pyval.Tuple(pyval.Int(1)):     "(1,)",
		pyval.Tuple():                 "()",
		pyval.List(pyval.Bool(false)): "[False]",
		pyval.BigInt(new(big.Int).Lsh(big.NewInt(1), 70)): "1180591620717411303424",
	} {
		if got := v.String(); got != want {
			t.Errorf("String = %s, want %s", got, want)
		}
	}
	long := pyval.Bytes(make([]byte, 10000)).String()
	if len(long) > 210 || !strings.HasSuffix(long, "...") {
		t.Errorf("long value renders as %d bytes: %.50s", len(long), long)
	}
	l := pyval.List()
	p, err := pyval.Unpickle([]byte("]q\x00h\x00a."))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "[...]" {
		t.Errorf("self-containing list = %s", got)
	}
	if l.String() != "[]" {
		t.Error(l.String())
	}
}

func TestTreeSize(t *testing.T) {
	v := pyval.Tuple(pyval.Bytes(make([]byte, 10)), pyval.Str("ab"))
	if n, ok := v.TreeSize(100); !ok || n != 1+11+3 {
		t.Errorf("TreeSize = %d, %v", n, ok)
	}
	if _, ok := v.TreeSize(10); ok {
		t.Error("TreeSize within 10")
	}
	// A memo DAG: each list holds the previous one twice.
	var p strings.Builder
	p.WriteString("]q\x000")
	for i := 0; i < 60; i++ {
		p.WriteString("(h\x00h\x00lq\x000")
	}
	p.WriteString("h\x00.")
	dag, err := pyval.Unpickle([]byte(p.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dag.TreeSize(1 << 20); ok {
		t.Error("exponential DAG within 1 MiB")
	}
	cyc, _ := pyval.Unpickle([]byte("]q\x00h\x00a."))
	if _, ok := cyc.TreeSize(1 << 30); ok {
		t.Error("a cycle has a finite size")
	}
}

func TestEqual(t *testing.T) {
	a := pyval.Tuple(pyval.Int(1), pyval.Float(math.NaN()))
	b := pyval.Tuple(pyval.Int(1), pyval.Float(math.NaN()))
	if !pyval.Equal(a, b) {
		t.Error("equal tuples differ")
	}
	for _, c := range []*pyval.Value{
		pyval.Tuple(pyval.Bool(true), pyval.Float(math.NaN())),
		pyval.List(pyval.Int(1), pyval.Float(math.NaN())),
		pyval.Tuple(pyval.Int(1)),
		pyval.Tuple(pyval.Int(1), pyval.Float(-math.NaN())),
	} {
		if pyval.Equal(a, c) {
			t.Errorf("%v equals %v", a, c)
		}
	}
}
