package pyval_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/pyval/pyvaltest"
)

// zeoVector is one line of testdata/zeo-pickles.txt.
type zeoVector struct {
	name   string
	pickle []byte
	value  *pyval.Value
}

// readZeoVectors parses testdata/zeo-pickles.txt (tests/vectors/gen_pyval.py).
func readZeoVectors(t testing.TB) []zeoVector {
	t.Helper()
	var out []zeoVector
	for _, l := range vectorLines(t, "testdata/zeo-pickles.txt", "pickle", 4) {
		p, err := hex.DecodeString(l.fields[2])
		if err != nil {
			t.Fatalf("line %d: %v", l.n, err)
		}
		v, err := pyvaltest.FromJSON([]byte(l.fields[3]))
		if err != nil {
			t.Fatalf("line %d: %v", l.n, err)
		}
		out = append(out, zeoVector{l.fields[1], p, v})
	}
	return out
}

// vectorLine is one line of a vector file: its number and its fields.
type vectorLine struct {
	n      int
	fields []string
}

// vectorLines returns the lines of a vector file, each split into n
// space-separated fields of which the first is kind; comments and blank
// lines are skipped.
func vectorLines(t testing.TB, path, kind string, n int) []vectorLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vectorLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for i := 1; sc.Scan(); i++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, " ", n)
		if len(fields) != n || fields[0] != kind {
			t.Fatalf("%s line %d: malformed", path, i)
		}
		out = append(out, vectorLine{i, fields})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var zeoFast = pyval.PickleOptions{Protocol: 3, Fast: true}

// TestZeoPickleVectors: Pickle{3, Fast} writes what zodbpickle's fast
// protocol-3 Pickler writes for ZEO messages, and Unpickle reads it back
// to the same value.
func TestZeoPickleVectors(t *testing.T) {
	vs := readZeoVectors(t)
	if len(vs) < 90 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		got, err := pyval.Pickle(v.value, zeoFast)
		if err != nil || !bytes.Equal(got, v.pickle) {
			t.Errorf("%s: Pickle = %.200x, %v\nwant %.200x", v.name, got, err, v.pickle)
		}
		back, err := pyval.Unpickle(v.pickle)
		if err != nil || !pyval.Equal(back, v.value) {
			t.Errorf("%s: Unpickle = %v, %v\nwant %v", v.name, back, err, v.value)
		}
	}
}

// The reference's observed wire bytes (zeo-protocol.md §2.3) are among
// what Pickle produces.
func TestZeoReferencePickles(t *testing.T) {
	z64, one := make([]byte, 8), []byte{0, 0, 0, 0, 0, 0, 0, 1}
	for want, v := range map[string]*pyval.Value{
		"8003284b0189580800000072656769737465725801000000314b0086742e": pyval.Tuple(pyval.Int(1), pyval.Bool(false),
			pyval.Str("register"), pyval.Tuple(pyval.Str("1"), pyval.Int(0))),
		"8003284affffffff4b0058060000002e7265706c794e742e": pyval.Tuple(pyval.Int(-1), pyval.Int(0), pyval.Str(".reply"), pyval.None()),
		"8003284308000000000000000043080000000000000001864b0258060000002e7265706c79581d0000005a4f44422e504f53457863657074696f6e2e504f534b65794572726f72430800000000000000008586742e": pyval.Tuple(
			pyval.Tuple(pyval.Bytes(z64), pyval.Bytes(one)), pyval.Int(2), pyval.Str(".reply"),
			pyval.Tuple(pyval.Str("ZODB.POSException.POSKeyError"), pyval.Tuple(pyval.Bytes(z64)))),
	} {
		got, err := pyval.Pickle(v, zeoFast)
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("Pickle(%v) = %x, %v\nwant %s", v, got, err, want)
		}
	}
}
