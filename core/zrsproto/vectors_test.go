package zrsproto

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

// vectorFile is one parsed testdata file: lines of space-separated fields,
// "-" standing for an empty hex field.
type vectorLine struct {
	lineNo int
	fields []string
}

func readVectors(t testing.TB, name string) []vectorLine {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vectorLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, vectorLine{n, strings.Fields(line)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	if s == "-" {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	vTid = zodb.Tid(0x036c6b90f7777778)
	vDtx = zodb.Tid(0x036c6b90f3333333)
)

var vDigest = [16]byte{0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e}

// wantMessages are the values behind the "msg" vectors of gen_zrs.py.
var wantMessages = map[string]any{
	"T_initial": TxnBegin{Tid: vTid, Status: ' ', User: []byte{}, Description: []byte("initial database creation")},
	"T_ext": TxnBegin{Tid: vTid, Status: 'p', User: []byte("/ admin"), Description: []byte("desc"),
		Extension: []byte("\x80\x03}q\x00X\t\x00\x00\x00user_nameq\x01X\x01\x00\x00\x00xq\x02s.")},
	"T_binary":  TxnBegin{Tid: vTid, Status: ' ', User: []byte("h\xc3\xa9llo"), Description: []byte("\x00\xff\x80 raw")},
	"S_none":    Store{Oid: 1, Tid: vTid},
	"S_oid0":    Store{Oid: 0, Tid: vTid},
	"S_backptr": Store{Oid: 1, Tid: vTid, DataTxn: vDtx},
	"B_0":       StoreBlob{Store: Store{Oid: 1, Tid: vTid}, Blocks: 0},
	"B_1":       StoreBlob{Store: Store{Oid: 1, Tid: vTid}, Blocks: 1},
	"B_300":     StoreBlob{Store: Store{Oid: 1, Tid: vTid, DataTxn: vDtx}, Blocks: 300},
	"B_70000":   StoreBlob{Store: Store{Oid: 1, Tid: vTid}, Blocks: 70000},
	"C":         Commit{Checksum: vDigest},
	"C_zero":    Commit{},
	"C_old":     Commit{Legacy: true},
}

// normalizeMsg makes nil and empty byte slices compare equal.
func normalizeMsg(m any) any {
	if t, ok := m.(TxnBegin); ok {
		for _, b := range []*[]byte{&t.User, &t.Description, &t.Extension} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		return t
	}
	return m
}

func sameMsg(a, b any) bool {
	a, b = normalizeMsg(a), normalizeMsg(b)
	ta, ok1 := a.(TxnBegin)
	tb, ok2 := b.(TxnBegin)
	if ok1 && ok2 {
		return ta.Tid == tb.Tid && ta.Status == tb.Status && bytes.Equal(ta.User, tb.User) &&
			bytes.Equal(ta.Description, tb.Description) && bytes.Equal(ta.Extension, tb.Extension)
	}
	return a == b
}

// TestMessageVectors: EncodeControl writes what Python 3 zc.zrs writes,
// byte for byte, and DecodeControl reads it back (spec §2.5, §2.6).
func TestMessageVectors(t *testing.T) {
	seen := 0
	for _, l := range readVectors(t, "vectors.txt") {
		if l.fields[0] != "msg" {
			continue
		}
		seen++
		name, payload := l.fields[1], unhex(t, l.fields[2])
		want, ok := wantMessages[name]
		if !ok {
			t.Fatalf("line %d: no expected value for %s", l.lineNo, name)
		}
		got, err := EncodeControl(want)
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%s: EncodeControl = %x, %v\nwant %x", name, got, err, payload)
		}
		dec, err := DecodeControl(payload)
		if err != nil || !sameMsg(dec, want) {
			t.Errorf("%s: DecodeControl = %#v, %v; want %#v", name, dec, err, want)
		}
	}
	if seen != len(wantMessages) {
		t.Errorf("saw %d msg vectors, want %d", seen, len(wantMessages))
	}
}

// TestPy2MessageVectors: messages pickled by a Python 2 primary decode to
// the same values.
func TestPy2MessageVectors(t *testing.T) {
	seen := 0
	for _, l := range readVectors(t, "py2-messages.txt") {
		seen++
		name, payload := l.fields[0], unhex(t, l.fields[1])
		want, ok := wantMessages[name]
		if name == "B_300_nodtx" {
			want, ok = StoreBlob{Store: Store{Oid: 1, Tid: vTid}, Blocks: 300}, true
		}
		if !ok {
			t.Fatalf("line %d: no expected value for %s", l.lineNo, name)
		}
		dec, err := DecodeControl(payload)
		if err != nil || !sameMsg(dec, want) {
			t.Errorf("%s: DecodeControl = %#v, %v; want %#v", name, dec, err, want)
		}
	}
	if seen < 8 {
		t.Errorf("only %d Python 2 vectors", seen)
	}
}

// TestExtensionVectors: the extension travels as Python does it both ways.
// A primary turns the stored bytes into the T Python sends, and a
// secondary stores exactly what Python ZODB would store for that T.
func TestExtensionVectors(t *testing.T) {
	n := 0
	for _, l := range readVectors(t, "vectors.txt") {
		switch l.fields[0] {
		case "ext":
			n++
			name, stored, sent, secondary := l.fields[1], unhex(t, l.fields[2]), unhex(t, l.fields[3]), unhex(t, l.fields[4])
			checkExtEncode(t, name, stored, sent)
			checkExtEncode(t, name+" (secondary's bytes)", secondary, sent)
			m, err := DecodeControl(sent)
			if err != nil {
				t.Errorf("%s: DecodeControl: %v", name, err)
				continue
			}
			if got := m.(TxnBegin).Extension; !bytes.Equal(got, secondary) {
				t.Errorf("%s: stored extension\n got %x\nwant %x", name, got, secondary)
			}
		case "extpy2":
			n++
			checkExtEncode(t, l.fields[1], unhex(t, l.fields[2]), unhex(t, l.fields[3]))
		}
	}
	if n < 300 {
		t.Errorf("only %d extension vectors", n)
	}
}

func checkExtEncode(t *testing.T, name string, stored, want []byte) {
	t.Helper()
	got, err := EncodeControl(TxnBegin{Tid: vTid, Status: ' ', Extension: stored})
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: T from stored extension %x\n got %x, %v\nwant %x", name, stored, got, err, want)
	}
}

// vectorStream is one "stream" block of vectors.txt.
type vectorStream struct {
	start  zodb.Tid
	labels []string
	frames [][]byte
}

// wire is the stream as the primary puts it on the wire.
func (s *vectorStream) wire() []byte {
	var b bytes.Buffer
	for _, f := range s.frames {
		WriteFrame(&b, f)
	}
	return b.Bytes()
}

func readStreams(t testing.TB) map[string]*vectorStream {
	out := map[string]*vectorStream{}
	var cur *vectorStream
	for _, l := range readVectors(t, "vectors.txt") {
		switch l.fields[0] {
		case "stream":
			tid, err := zodb.ParseTid(l.fields[3])
			if err != nil {
				t.Fatal(err)
			}
			cur = &vectorStream{start: tid}
			out[l.fields[1]] = cur
		case "frame":
			cur.labels = append(cur.labels, l.fields[1])
			cur.frames = append(cur.frames, unhex(t, l.fields[2]))
		}
	}
	return out
}
