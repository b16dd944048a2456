package pyval_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

func TestPickleOptions(t *testing.T) {
	v := pyval.Tuple(pyval.Bytes([]byte("ab")), pyval.Bool(true), pyval.Uint(1<<63))
	for _, c := range []struct {
		o    pyval.PickleOptions
		want string
	}{
		{pyval.PickleOptions{Protocol: 1, Fast: true},
			"(c_codecs\nencode\n(X\x02\x00\x00\x00abX\x06\x00\x00\x00latin1tRI01\nL9223372036854775808L\nt."},
		{pyval.PickleOptions{Protocol: 2, Fast: true},
			"\x80\x02c_codecs\nencode\n(X\x02\x00\x00\x00abX\x06\x00\x00\x00latin1tR\x88\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00\x87."},
		{pyval.PickleOptions{Protocol: 3, Fast: true}, "\x80\x03C\x02ab\x88\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00\x87."},
		{pyval.PickleOptions{Protocol: 3}, "\x80\x03C\x02abq\x00\x88\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00\x87q\x01."},
	} {
		got, err := pyval.Pickle(v, c.o)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: %q, %v\nwant %q", c.o, got, err, c.want)
		}
	}
	for _, o := range []pyval.PickleOptions{{Protocol: 0, Fast: true}, {Protocol: 4, Fast: true}, {Protocol: 1}} {
		if _, err := pyval.Pickle(v, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestPickleSharing: fast mode writes a shared object twice, the memo
// mode refers back to it.
func TestPickleSharing(t *testing.T) {
	s := pyval.Str("shared")
	v := pyval.List(s, s)
	fast, _ := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true})
	memo, _ := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3})
	if strings.Count(string(fast), "shared") != 2 || strings.Count(string(memo), "shared") != 1 {
		t.Errorf("fast %q memo %q", fast, memo)
	}
}

func TestPickleRefusals(t *testing.T) {
	cyc, _ := pyval.Unpickle([]byte("]q\x00h\x00a."))
	deep := pyval.List()
	for range pyval.MaxDepth + 1 {
		deep = pyval.List(deep)
	}
	glob, _ := pyval.Unpickle([]byte("c_codecs\nencode\n(X\x00\x00\x00\x00X\x06\x00\x00\x00latin1tR."))
	for name, v := range map[string]*pyval.Value{"cycle": cyc, "deep": deep} {
		if _, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true}); err == nil {
			t.Errorf("%s pickled", name)
		}
	}
	if glob.Kind() != pyval.KindBytes {
		t.Errorf("_codecs.encode gave a %v", glob.Kind())
	}
	// The limit is MaxDepth containers, no fewer: that many pickle, one
	// more does not.
	nested := pyval.List()
	for range pyval.MaxDepth - 1 {
		nested = pyval.List(nested)
	}
	if _, err := pyval.Pickle(nested, pyval.PickleOptions{Protocol: 3, Fast: true}); err != nil {
		t.Errorf("%d nested lists: %v", pyval.MaxDepth, err)
	}
	if _, err := pyval.Pickle(pyval.List(nested), pyval.PickleOptions{Protocol: 3, Fast: true}); err == nil {
		t.Errorf("%d nested lists pickled", pyval.MaxDepth+1)
	}
	big := pyval.Bytes(make([]byte, 1000))
	_, err := pyval.Pickle(pyval.List(big, big), pyval.PickleOptions{Protocol: 3, Fast: true, Max: 1500})
	if !errors.Is(err, pyval.ErrTooLong) {
		t.Errorf("Max: %v", err)
	}
}

// A Python 2 str is written as ZODB reads it on Python 3: text when
// ASCII, bytes otherwise.
func TestPicklePy2Str(t *testing.T) {
	v, err := pyval.Unpickle([]byte("(U\x02abU\x01\xfft."))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true})
	if err != nil || string(got) != "\x80\x03X\x02\x00\x00\x00abC\x01\xff\x86." {
		t.Errorf("%q, %v", got, err)
	}
}

func TestExtension(t *testing.T) {
	if b, err := pyval.ExtensionBytes(pyval.Dict()); err != nil || b != nil {
		t.Errorf("empty dict: %x, %v", b, err)
	}
	if b, err := pyval.ExtensionBytes(pyval.None()); err != nil || b != nil {
		t.Errorf("None: %x, %v", b, err)
	}
	if _, err := pyval.ExtensionBytes(pyval.List()); err == nil {
		t.Error("list extension accepted")
	}
	d := pyval.Dict(pyval.Str("user_name"), pyval.Str("x"))
	b, err := pyval.ExtensionBytes(d)
	if err != nil || string(b) != "\x80\x03}q\x00X\t\x00\x00\x00user_nameq\x01X\x01\x00\x00\x00xq\x02s." {
		t.Errorf("%q, %v", b, err)
	}
	back, err := pyval.ExtensionDict(b)
	if err != nil || !pyval.Equal(back, d) {
		t.Errorf("%v, %v", back, err)
	}
	// Python 2 strings: ASCII becomes text, the rest bytes.
	py2, err := pyval.ExtensionDict([]byte("}q\x01(U\x01kq\x02U\x02\xe9\xffq\x03u."))
	if err != nil || py2.String() != `{'k': b'\xe9\xff'}` {
		t.Errorf("py2: %v, %v", py2, err)
	}
	if e, err := pyval.ExtensionDict(nil); err != nil || e.Kind() != pyval.KindDict || e.Len() != 0 {
		t.Errorf("empty: %v, %v", e, err)
	}
	huge := pyval.Dict(pyval.Str("k"), pyval.Bytes(make([]byte, pyval.MaxExtension)))
	if _, err := pyval.ExtensionBytes(huge); err == nil || !strings.Contains(err.Error(), "FileStorage") {
		t.Errorf("oversized extension: %v", err)
	}
}
