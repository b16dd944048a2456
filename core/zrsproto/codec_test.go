package zrsproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// TestAltPickles: the messages pickled with the memo (protocol 1 without
// fast mode) or with protocols 2 and 3 decode to the same values.
func TestAltPickles(t *testing.T) {
	n := 0
	for _, l := range readVectors(t, "vectors.txt") {
		if l.fields[0] != "alt" {
			continue
		}
		n++
		want := wantMessages[l.fields[1]]
		got, err := DecodeControl(unhex(t, l.fields[3]))
		if err != nil || !sameMsg(got, want) {
			t.Errorf("%s protocol %s: %#v, %v", l.fields[1], l.fields[2], got, err)
		}
	}
	if n != 3*len(wantMessages) {
		t.Errorf("%d alt vectors", n)
	}
}

// TestDecodeControlErrors: malformed or unknown input is ErrProtocol.
func TestDecodeControlErrors(t *testing.T) {
	valid, _ := EncodeControl(Store{Oid: 1, Tid: 2})
	tb, _ := EncodeControl(TxnBegin{Tid: 1, Status: ' '})
	twoCharStatus := bytes.Replace(tb, []byte("X\x01\x00\x00\x00 "), []byte("X\x02\x00\x00\x00  "), 1)
	if bytes.Equal(twoCharStatus, tb) {
		t.Fatalf("test set-up: no status ' ' in %q", tb)
	}
	cases := map[string]string{
		"T status of two": string(twoCharStatus),
		"empty":           "",
		"no stop":         "N",
		"trailing bytes":  "N.N",
		"two values":      "NN.",
		"not a tuple":     "N.",
		"unknown opcode":  "\xff.",
		"unknown global":  "cos\nsystem\n(X\x02\x00\x00\x00lst\x52.",
		"unknown type":    "(X\x01\x00\x00\x00Z)t.",
		"bad utf8":        "(X\x01\x00\x00\x00\xff)t.",
		"T short":         "(X\x01\x00\x00\x00T)t.",
		"S tid not bytes": "(X\x01\x00\x00\x00S(NNX\x00\x00\x00\x00Ntt.",
		"S version":       "(X\x01\x00\x00\x00S(C\x08aaaaaaaaC\x08aaaaaaaaX\x01\x00\x00\x00vNtt.",
		"C short digest":  "(X\x01\x00\x00\x00C(C\x03abctt.",
		"B negative":      "(X\x01\x00\x00\x00B(C\x08aaaaaaaaC\x08aaaaaaaaX\x00\x00\x00\x00NJ\xff\xff\xff\xfftt.",
		"huge length":     "X\xff\xff\xff\x7f.",
		"memo miss":       "h\x05.",
		"unhashable key":  "}]Ns.",
		"latin1 overflow": "c_codecs\nencode\n(X\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1tR.",
		"stack underflow": "t.",
		"truncated":       string(valid[:len(valid)-1]),
	}
	for name, p := range cases {
		if _, err := DecodeControl([]byte(p)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestExtensionErrors: extensions that cannot travel are refused with a
// clear error on both sides.
func TestExtensionErrors(t *testing.T) {
	for name, ext := range map[string]string{
		"not a dict":  "\x80\x03]q\x00.",
		"instance":    "\x80\x03}q\x00X\x01\x00\x00\x00dcdatetime\ndate\nC\x04\x07\xe8\x01\x01\x85R\x86s.",
		"garbage":     "\x80\x03}",
		"cyclic list": "\x80\x03}q\x00X\x01\x00\x00\x00l]q\x01h\x01as.",
	} {
		if _, err := EncodeControl(TxnBegin{Tid: 1, Status: ' ', Extension: []byte(ext)}); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// A dict so shared that pickling it would be enormous.
	var p strings.Builder
	p.WriteString("\x80\x03]q\x00")
	for i := 1; i < 60; i++ {
		p.WriteString("(h\x00h\x00lq\x00")
	}
	ext := []byte("\x80\x03}X\x01\x00\x00\x00k" + strings.TrimPrefix(p.String(), "\x80\x03") + "s.")
	if _, err := EncodeControl(TxnBegin{Tid: 1, Status: ' ', Extension: ext}); err == nil {
		t.Errorf("exponential extension encoded")
	}
}

// TestExtensionDuplicateKeys: a pickle setting one key twice (1 and 1.0 and
// True are one key in Python) keeps the first key and the last value.
func TestExtensionDuplicateKeys(t *testing.T) {
	t1, _ := EncodeControl(TxnBegin{Tid: 1, Status: ' ',
		Extension: []byte("\x80\x03}(K\x01X\x01\x00\x00\x00aG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00b\x88X\x01\x00\x00\x00cu.")})
	t2, _ := EncodeControl(TxnBegin{Tid: 1, Status: ' ',
		Extension: []byte("\x80\x03}K\x01X\x01\x00\x00\x00cs.")})
	if !bytes.Equal(t1, t2) || t1 == nil {
		t.Errorf("%x\n%x", t1, t2)
	}
}

// TestRoundTrip: every message survives encode → decode.
func TestRoundTrip(t *testing.T) {
	ext, _ := extensionBytes(mustDict(t, "\x80\x03}q\x00(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bC\x02\x00\xffu."))
	for _, m := range []any{
		TxnBegin{Tid: 1<<63 - 1, Status: 'p', User: []byte("\xff\x00"), Description: []byte("d\xe9"), Extension: ext},
		TxnBegin{Tid: 1<<63 - 1, Status: 'p', User: []byte("\xff\x00"), Description: bytes.Repeat([]byte("d"), 70000), Extension: ext},
		Store{Oid: 1<<64 - 1, Tid: 3, DataTxn: 2},
		StoreBlob{Store: Store{Oid: 0, Tid: 3}, Blocks: 1 << 40},
		Commit{Checksum: [16]byte{1, 2, 3}},
		Commit{Legacy: true},
	} {
		b, err := EncodeControl(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeControl(b)
		if tb, ok := m.(TxnBegin); ok && len(tb.Description) > 65535 {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("oversize description accepted: %v", err)
			}
			continue
		}
		if err != nil || !sameMsg(got, m) {
			t.Errorf("%#v → %#v, %v", m, got, err)
		}
	}
	if _, err := EncodeControl("T"); err == nil {
		t.Errorf("string encoded as a message")
	}
}

func mustDict(t *testing.T, p string) *pyval.Value {
	v, err := pyval.Unpickle([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The extension limit pyval enforces is FileStorage's.
func TestMaxExtension(t *testing.T) {
	if pyval.MaxExtension != zodb.MaxMetaLen {
		t.Fatalf("pyval.MaxExtension = %d, zodb.MaxMetaLen = %d", pyval.MaxExtension, zodb.MaxMetaLen)
	}
}
