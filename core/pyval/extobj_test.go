package pyval_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// extObjVector is one line of testdata/ext-objects.txt.
type extObjVector struct {
	name             string
	stored, t1, back []byte
}

// readExtObjVectors parses testdata/ext-objects.txt (tests/vectors/gen_extobj.py).
func readExtObjVectors(t testing.TB) []extObjVector {
	t.Helper()
	var out []extObjVector
	for _, l := range vectorLines(t, "testdata/ext-objects.txt", "ext", 5) {
		v := extObjVector{name: l.fields[1]}
		for i, dst := range []*[]byte{&v.stored, &v.t1, &v.back} {
			var err error
			if *dst, err = hex.DecodeString(l.fields[2+i]); err != nil {
				t.Fatalf("line %d: %v", l.n, err)
			}
		}
		out = append(out, v)
	}
	if len(out) < 10 {
		t.Fatalf("only %d vectors", len(out))
	}
	return out
}

// Extensions holding objects (a datetime, a set, a UUID ...), as Python
// FileStorage stores them and as a zc.zrs primary sends them, go through
// zrs as they go through Python: the stored bytes decode and pickle back
// to themselves (a zrs primary serving a zrs secondary); the T form a
// zc.zrs primary sends pickles to what a Python secondary stores; and the
// T form zrs writes (for a zc.zrs secondary) is CPython's, except that an
// object CPython spells with copy_reg._reconstructor may be written with
// NEWOBJ, and a builtin exception as __builtin__.X, which read back to
// the same objects.
// zrsT1 is the T form zrs writes where it differs from CPython's on
// purpose (the NEWOBJ and __builtin__ spellings), in hex.
var zrsT1 = map[string]string{
	"uuid":          "7d58070000007265717565737463757569640a555549440a29817d5803000000696e744c313236373635303630303232383232393430313439363730333230353338314c0a7362732e",
	"two_uuid":      "7d2858010000006163757569640a555549440a29817d5803000000696e744b05736258010000006263757569640a555549440a29817d5803000000696e744b067362752e",
	"two_instances": "7d28580100000061635f5f6d61696e5f5f0a4a6f620a29817d580500000073746174655804000000646f6e657362580100000062635f5f6d61696e5f5f0a4a6f620a29817d5805000000737461746558060000006661696c65647362752e",
	"namedtuple":    "7d5802000000647463646563696d616c0a446563696d616c5475706c650a284b00284b014b054b00744afeffffff7481732e",
	"exception":     "7d58050000006572726f72635f5f6275696c74696e5f5f0a4b65794572726f720a2858010000006b7452732e",
	"userdict":      "7d58010000007563636f6c6c656374696f6e730a55736572446963740a29817d5804000000646174617d58010000006b4b01737362732e",
}

func TestExtensionObjectsAsCPython(t *testing.T) {
	for _, v := range readExtObjVectors(t) {
		d, err := pyval.ExtensionDict(v.stored)
		if err != nil {
			t.Errorf("%s: stored extension: %v", v.name, err)
			continue
		}
		if got, err := pyval.ExtensionBytes(d); err != nil || !bytes.Equal(got, v.stored) {
			t.Errorf("%s: stored extension pickles back to\n%q, %v\nwant\n%q", v.name, got, err, v.stored)
		}

		t1, err := pyval.Pickle(d, pyval.PickleOptions{Protocol: 1, Fast: true})
		if err != nil {
			t.Errorf("%s: protocol 1: %v", v.name, err)
			continue
		}
		if !bytes.Equal(t1, v.t1) {
			// Two spellings differ on purpose (see Pickle): NEWOBJ for
			// CPython's copy_reg._reconstructor, and a builtin exception
			// as __builtin__.X for CPython's exceptions.X. Where they do,
			// zrs's bytes are pinned, and must read as CPython's do.
			if !bytes.Contains(v.t1, []byte("copy_reg\n_reconstructor\n")) && !bytes.Contains(v.t1, []byte("cexceptions\n")) {
				t.Errorf("%s: protocol 1\n%q\nCPython writes\n%q", v.name, t1, v.t1)
			}
			if pinned, ok := zrsT1[v.name]; !ok || hex.EncodeToString(t1) != pinned {
				t.Errorf("%s: protocol 1\n%q\nzrs wrote (pinned)\n%s", v.name, t1, pinned)
			}
			ours, err1 := pyval.UnpickleWith(t1, pyval.UnpickleOptions{Objects: true})
			theirs, err2 := pyval.UnpickleWith(v.t1, pyval.UnpickleOptions{Objects: true})
			if err1 != nil || err2 != nil || !pyval.Equal(ours, theirs) {
				t.Errorf("%s: our protocol 1 reads as %v (%v), CPython's as %v (%v)", v.name, ours, err1, theirs, err2)
			}
		}

		sent, err := pyval.UnpickleWith(v.t1, pyval.UnpickleOptions{Objects: true})
		if err != nil {
			t.Errorf("%s: T form: %v", v.name, err)
			continue
		}
		if got, err := pyval.ExtensionBytes(sent); err != nil || !bytes.Equal(got, v.back) {
			t.Errorf("%s: T form stored as\n%q, %v\na Python secondary stores\n%q", v.name, got, err, v.back)
		}
	}
}

// Objects stay refused where the caller did not ask for them, and the
// decoder never calls what it reads.
func TestObjectsOnlyWhenAsked(t *testing.T) {
	for _, v := range readExtObjVectors(t) {
		if _, err := pyval.Unpickle(v.stored); err == nil {
			t.Errorf("%s: decoded without Objects", v.name)
		}
	}
	if _, err := pyval.UnpickleWith([]byte("cos\nsystem\n."), pyval.UnpickleOptions{}); err == nil {
		t.Error("bare global decoded without Objects")
	}
	// A newline in a protocol-4 global's name would become opcodes when
	// written on a GLOBAL line.
	if v, err := pyval.UnpickleWith([]byte("\x80\x04\x8c\x08builtins\x8c\x08len\n0S'x\x93."), pyval.UnpickleOptions{Objects: true}); err == nil {
		t.Errorf("global with a newline in its name decoded: %v", v)
	}
}

// An object or a class as a dict key ({date: count}: Python pickles it,
// FileStorage stores it) is carried like any other: keyed by identity,
// as CPython holds no two equal keys in a dict it pickled.
func TestObjectDictKeys(t *testing.T) {
	// pickle.dumps({'per_day': {datetime.date(2020, 1, 2): 3, datetime.date(2020, 1, 3): 4}, 'cls': {int: 'x'}}, 3)
	stored := []byte("\x80\x03}q\x00(X\x07\x00\x00\x00per_dayq\x01}q\x02(cdatetime\ndate\nq\x03C\x04\x07\xe4\x01\x02q\x04\x85q\x05Rq\x06K\x03h\x03C\x04\x07\xe4\x01\x03q\x07\x85q\x08Rq\tK\x04uX\x03\x00\x00\x00clsq\n}q\x0bcbuiltins\nint\nq\x0cX\x01\x00\x00\x00xq\rsu.")
	d, err := pyval.ExtensionDict(stored)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pyval.ExtensionBytes(d); err != nil || !bytes.Equal(got, stored) {
		t.Errorf("pickled back to %q, %v\nwant %q", got, err, stored)
	}
	if per, _ := d.Lookup("per_day"); per == nil || per.Len() != 2 {
		t.Errorf("per_day: %v", per)
	}
}

// FuzzExtensionObjects: no input panics ExtensionDict; an extension that
// decodes pickles (with the memo, as FileStorage stores it) to bytes that
// are a fixed point after one round, and its protocol-1 form (a T
// message's) reads back to the same value.
func FuzzExtensionObjects(f *testing.F) {
	for _, v := range readExtObjVectors(f) {
		f.Add(v.stored)
		f.Add(v.t1)
	}
	objects := pyval.UnpickleOptions{Objects: true}
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := pyval.ExtensionDict(p)
		if err != nil {
			return
		}
		_ = d.String()
		limit := 4*len(p) + 64
		if size, ok := d.TreeSize(limit); !ok {
			if size <= limit {
				t.Fatalf("TreeSize refused %v: %d within %d", d, size, limit)
			}
			return // a huge memo expansion, a cycle, or too deep
		}
		b, err := pyval.ExtensionBytes(d)
		if errors.Is(err, pyval.ErrTooLong) || (err == nil && len(b) == 0) {
			return // longer than an extension may be; or empty
		}
		if err != nil {
			t.Fatalf("%v, a tree TreeSize bounds, has no stored form: %v", d, err)
		}
		d2, err := pyval.ExtensionDict(b)
		if err != nil {
			t.Fatalf("stored form %q of %v does not decode: %v", b, d, err)
		}
		if b2, err := pyval.ExtensionBytes(d2); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not a fixed point: %q, %v\nthen %q", b, err, b2)
		}
		t1, err := pyval.Pickle(d2, pyval.PickleOptions{Protocol: 1, Fast: true})
		if err != nil {
			t.Fatalf("%v: protocol 1: %v", d2, err)
		}
		back, err := pyval.UnpickleWith(t1, objects)
		if err != nil || !pyval.Equal(back, d2) {
			t.Fatalf("protocol 1 %q of %v read back as %v, %v", t1, d2, back, err)
		}
	})
}
