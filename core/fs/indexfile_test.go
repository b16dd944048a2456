package fs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ogórek "github.com/kisielk/og-rek"

	"github.com/zrs-replication/zrs/core/zodb"
)

// refIndexHex is the example index of the format reference (§1.8), written
// by Python ZODB: pos 934; oids 0, 1, 2 at 777, 355, 679.
const refIndexHex = "80034da6032e" +
	"8003" + "4306000000000000" + "4318" + "000000010002" + "000000000309" + "000000000163" + "0000000002a7" + "862e" +
	"80034e2e"

func refIndexBytes(t testing.TB) []byte {
	b, err := hex.DecodeString(refIndexHex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var refIndexWant = map[zodb.Oid]int64{0: 777, 1: 355, 2: 679}

// pythonIndexWant is what testdata/python.fs.index holds. Python ZODB 6.4
// wrote it (in testdata/) with:
//
//	from ZODB.fsIndex import fsIndex
//	from ZODB.utils import p64
//
//	idx = fsIndex()
//	for i in range(1000):
//	    idx[p64(i)] = 4 + 97 * i
//	for i in range(5):
//	    idx[p64((i + 1) << 16 | 7)] = 2**47 + i
//	idx[p64(2**64 - 1)] = 2**48 - 1
//	idx.save(123456789, 'python.fs.index')
//
//	small = fsIndex()
//	small[p64(0)] = 4
//	small[p64(0x0102030405060708)] = 2**40
//	small.save(2**40 + 5, 'python-longpos.fs.index')
func pythonIndexWant() (int64, map[zodb.Oid]int64) {
	want := map[zodb.Oid]int64{}
	for i := range 1000 {
		want[zodb.Oid(i)] = 4 + 97*int64(i)
	}
	for i := range 5 {
		want[zodb.Oid((i+1)<<16|7)] = 1<<47 + int64(i)
	}
	want[^zodb.Oid(0)] = MaxPos
	return 123456789, want
}

// pythonLongPosWant is what testdata/python-longpos.fs.index holds; its pos
// is pickled as LONG1.
func pythonLongPosWant() (int64, map[zodb.Oid]int64) {
	return 1<<40 + 5, map[zodb.Oid]int64{0: 4, 0x0102030405060708: 1 << 40}
}

func indexOf(m map[zodb.Oid]int64) *Index {
	x := NewIndex()
	for oid, pos := range m {
		x.Set(oid, pos)
	}
	return x
}

func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs.index")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readOK(t *testing.T, path string, wantPos int64, want map[zodb.Oid]int64) *Index {
	t.Helper()
	pos, x, err := ReadIndexFile(path)
	if err != nil {
		t.Fatalf("ReadIndexFile: %v", err)
	}
	if pos != wantPos {
		t.Errorf("pos = %d, want %d", pos, wantPos)
	}
	checkIndex(t, x, want)
	return x
}

func TestReadIndexFileReference(t *testing.T) {
	readOK(t, writeTemp(t, refIndexBytes(t)), 934, refIndexWant)
}

func TestWriteIndexFileReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs.index")
	if err := WriteIndexFile(path, 934, indexOf(refIndexWant)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, refIndexBytes(t)) {
		t.Errorf("wrote\n%x\nwant Python's\n%s", got, refIndexHex)
	}
	readOK(t, path, 934, refIndexWant)
}

func TestReadIndexFilePython(t *testing.T) {
	pos, want := pythonIndexWant()
	x := readOK(t, filepath.Join("testdata", "python.fs.index"), pos, want)
	if oid, _ := x.MaxOid(); oid != ^zodb.Oid(0) {
		t.Errorf("MaxOid = %s, want ffffffffffffffff", oid)
	}
	pos, want = pythonLongPosWant()
	readOK(t, filepath.Join("testdata", "python-longpos.fs.index"), pos, want)
}

// Our writer reproduces Python's file byte for byte when pos < 2^31.
func TestWriteIndexFileMatchesPython(t *testing.T) {
	pos, want := pythonIndexWant()
	path := filepath.Join(t.TempDir(), "Data.fs.index")
	if err := WriteIndexFile(path, pos, indexOf(want)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	py, err := os.ReadFile(filepath.Join("testdata", "python.fs.index"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, py) {
		t.Errorf("our file (%d bytes) differs from Python's (%d bytes)", len(got), len(py))
	}
}

func TestIndexFileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]map[zodb.Oid]int64{
		"empty":     {},
		"one":       {42: 4},
		"extremes":  {0: 0, ^zodb.Oid(0): MaxPos, 1 << 16: 1, 1<<16 - 1: 2},
		"reference": refIndexWant,
	}
	dense, sparse := map[zodb.Oid]int64{}, map[zodb.Oid]int64{}
	for i := range 30_000 {
		dense[zodb.Oid(i*7)] = rng.Int64N(MaxPos + 1) // 4 buckets
		sparse[zodb.Oid(rng.Uint64())] = rng.Int64N(MaxPos + 1)
	}
	cases["dense"], cases["sparse"] = dense, sparse
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs.index")
			for _, pos := range []int64{4, 1<<31 - 1, 1 << 31, 1<<63 - 1} {
				if err := WriteIndexFile(path, pos, indexOf(want)); err != nil {
					t.Fatal(err)
				}
				readOK(t, path, pos, want)
			}
			checkWrittenBuckets(t, path)
		})
	}
}

// checkWrittenBuckets decodes a file we wrote with og-rek directly and
// checks what Python relies on: one tuple per prefix, in ascending prefix
// order, none empty, prefixes and buckets as bytes.
func checkWrittenBuckets(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := ogórek.NewDecoder(f)
	if _, err := dec.Decode(); err != nil {
		t.Fatal(err)
	}
	var prev string
	for n := 0; ; n++ {
		v, err := dec.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := v.(ogórek.None); ok {
			return
		}
		tup := v.(ogórek.Tuple)
		prefix, bucket := tup[0].(ogórek.Bytes), tup[1].(ogórek.Bytes)
		if len(bucket) == 0 {
			t.Fatalf("bucket %d (prefix %x) is empty", n, prefix)
		}
		if n > 0 && string(prefix) <= prev {
			t.Fatalf("bucket %d: prefix %x not after %x", n, prefix, prev)
		}
		prev = string(prefix)
	}
}

// Pickle builders for hand-made index files.
func proto(ops ...string) string { return "\x80\x03" + strings.Join(ops, "") + "." }
func sbb(s string) string        { return "C" + string(rune(len(s))) + s } // SHORT_BINBYTES, len < 128
func le32(n int) string          { return string(binary.LittleEndian.AppendUint32(nil, uint32(n))) }
func binInt(n int) string        { return "J" + le32(n) }

// bucketBytes encodes entries (oid suffix, position) in the order given.
func bucketBytes(entries ...[2]uint64) string {
	var s, p []byte
	for _, e := range entries {
		s = binary.BigEndian.AppendUint16(s, uint16(e[0]))
		p = append(p, binary.BigEndian.AppendUint64(nil, e[1])[2:]...)
	}
	return string(s) + string(p)
}

const pfx0 = "\x00\x00\x00\x00\x00\x00"

var (
	pos934   = proto("M\xa6\x03")
	pickNone = proto("N")
	bucket0  = proto(sbb(pfx0), sbb(bucketBytes([2]uint64{0, 777}, [2]uint64{1, 355}, [2]uint64{2, 679})), "\x86")
)

// The reader accepts every encoding Python 2 and 3 produce, and then some.
func TestReadIndexFileForms(t *testing.T) {
	bkt := bucketBytes([2]uint64{0, 777}, [2]uint64{1, 355}, [2]uint64{2, 679})
	cases := []struct {
		name string
		file string
		pos  int64
	}{
		{"reference", pos934 + bucket0 + pickNone, 934},
		{"BININT1 pos", proto("K\x05") + bucket0 + pickNone, 5},
		{"BININT pos", proto(binInt(70000)) + bucket0 + pickNone, 70000},
		{"LONG1 pos", proto("\x8a\x06\x05\x00\x00\x00\x00\x01") + bucket0 + pickNone, 1<<40 + 5},
		{"INT pos", "I934\n." + bucket0 + pickNone, 934},
		{"LONG pos", "L934L\n." + bucket0 + pickNone, 934},
		{"protocol 1 BINSTRING", pos934 + "(U\x06" + pfx0 + "T" + le32(len(bkt)) + bkt + "t." + pickNone, 934},
		{"protocol 2 SHORT_BINSTRING", pos934 + "\x80\x02U\x06" + pfx0 + "U\x18" + bkt + "\x86." + pickNone, 934},
		{"unicode as Latin-1", pos934 + proto("X"+le32(6)+pfx0, "X"+le32(len(bkt)+1)+strings.Replace(bkt, "\xa7", "\xc2\xa7", 1), "\x86") + pickNone, 934},
		{"list", pos934 + proto("](", sbb(pfx0), sbb(bkt), "e") + pickNone, 934},
		{"with memo", pos934 + proto(sbb(pfx0), "q\x00", sbb(bkt), "q\x01\x86q\x02") + pickNone, 934},
		{"empty bucket tolerated", pos934 + proto(sbb("\x00\x00\x00\x00\x00\x01"), sbb(""), "\x86") + bucket0 + pickNone, 934},
		{"trailing bytes ignored", pos934 + bucket0 + pickNone + "garbage", 934},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			readOK(t, writeTemp(t, []byte(c.file)), c.pos, refIndexWant)
		})
	}
}

func TestReadIndexFileErrors(t *testing.T) {
	cases := []struct {
		name   string
		file   string
		offset int64  // of the pickle at fault
		want   string // in the message
		old    bool   // ErrIndexOldFormat rather than ErrIndexFormat
	}{
		{"empty file", "", 0, "file ends where the position", false},
		{"old dict format", proto("}(X\x05\x00\x00\x00index}X\x03\x00\x00\x00posM\xa6\x03u"), 0, "old index format", true},
		{"pos is a str", proto(sbb("934")), 0, "first pickle is bytes", false},
		{"pos is None", pickNone, 0, "first pickle is None", false},
		{"negative pos", proto(binInt(-1)), 0, "negative position", false},
		{"huge pos", "L99999999999999999999L\n.", 0, "first pickle is an int", false},
		{"no terminator", pos934 + bucket0, 44, "file ends where a (prefix, bucket) pair", false},
		{"truncated pickle", pos934 + bucket0[:20], 6, "truncated", false},
		{"bad opcode", pos934 + "\x80\x03\xff.", 6, "bad pickle", false},
		{"bucket length", pos934 + proto(sbb(pfx0), sbb("\x00\x01\x00\x00\x00\x00\x01"), "\x86") + pickNone, 6, "7 bytes long, not a multiple of 8", false},
		{"unsorted suffixes", pos934 + proto(sbb(pfx0), sbb(bucketBytes([2]uint64{2, 1}, [2]uint64{1, 1})), "\x86") + pickNone, 6, "not strictly ascending (0001 after 0002)", false},
		{"duplicate suffix", pos934 + proto(sbb(pfx0), sbb(bucketBytes([2]uint64{1, 1}, [2]uint64{1, 1})), "\x86") + pickNone, 6, "not strictly ascending", false},
		{"duplicate prefix", pos934 + bucket0 + bucket0 + pickNone, 44, "second bucket for oid prefix 000000000000", false},
		{"short prefix", pos934 + proto(sbb("\x00\x00\x00\x00\x00"), sbb(""), "\x86") + pickNone, 6, "oid prefix is bytes of 5 bytes", false},
		{"prefix not bytes", pos934 + proto("K\x00", sbb(""), "\x86") + pickNone, 6, "oid prefix is an int", false},
		{"bucket not bytes", pos934 + proto(sbb(pfx0), "K\x00", "\x86") + pickNone, 6, "is an int, want bytes", false},
		{"3-tuple", pos934 + proto(sbb(pfx0), sbb(""), sbb(""), "\x87") + pickNone, 6, "3 items", false},
		{"entry is an int", pos934 + proto("K\x00") + pickNone, 6, "entry is an int", false},
		{"unicode above Latin-1", pos934 + proto("X\x07\x00\x00\x00\x00\x00\x00\x00\x00\xc4\x80", sbb(""), "\x86") + pickNone, 6, "oid prefix is a str", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, []byte(c.file))
			_, x, err := ReadIndexFile(path)
			if err == nil {
				t.Fatalf("no error; read %d entries", x.Len())
			}
			var ie *IndexFileError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *IndexFileError", err, err)
			}
			if ie.Path != path || ie.Offset != c.offset {
				t.Errorf("error at %s offset %d, want %s offset %d", ie.Path, ie.Offset, path, c.offset)
			}
			sentinel := ErrIndexFormat
			if c.old {
				sentinel = ErrIndexOldFormat
			}
			if !errors.Is(err, sentinel) {
				t.Errorf("error %v does not wrap %v", err, sentinel)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file and say %q", err, c.want)
			}
		})
	}
}

func TestReadIndexFileMissing(t *testing.T) {
	_, _, err := ReadIndexFile(filepath.Join(t.TempDir(), "nope.index"))
	var ie *IndexFileError
	if !errors.Is(err, iofs.ErrNotExist) || !errors.As(err, &ie) {
		t.Fatalf("error %v, want an *IndexFileError wrapping ErrNotExist", err)
	}
}

func TestWriteIndexFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs.index")
	if err := os.WriteFile(path+".index_tmp", []byte("stale temp file from a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteIndexFile(path, 100, indexOf(map[zodb.Oid]int64{1: 4})); err != nil {
		t.Fatal(err)
	}
	if err := WriteIndexFile(path, 934, indexOf(refIndexWant)); err != nil {
		t.Fatal(err)
	}
	readOK(t, path, 934, refIndexWant)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only Data.fs.index", entries)
	}
}

func TestWriteIndexFileErrors(t *testing.T) {
	cases := []struct {
		name string
		pos  int64
		idx  map[zodb.Oid]int64
		want string
	}{
		{"position beyond 48 bits", 934, map[zodb.Oid]int64{0: 4, 5: MaxPos + 1}, "oid 0000000000000005: position 281474976710656 does not fit"},
		{"negative entry", 934, map[zodb.Oid]int64{3: -1}, "oid 0000000000000003: position -1"},
		{"negative pos", -1, map[zodb.Oid]int64{}, "negative position -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs.index")
			orig := refIndexBytes(t)
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteIndexFile(path, c.pos, indexOf(c.idx))
			var ie *IndexFileError
			if !errors.As(err, &ie) || ie.Path != path || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want an *IndexFileError on %s saying %q", err, path, c.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, orig) {
				t.Error("the existing index was changed")
			}
			if _, err := os.Stat(path + ".index_tmp"); !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("temp file left behind: %v", err)
			}
		})
	}
}

func TestWriteIndexFileNoDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "Data.fs.index")
	err := WriteIndexFile(path, 934, indexOf(refIndexWant))
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("error %v, want ErrNotExist", err)
	}
}

// FuzzReadIndex: the decoder never panics, and whatever it accepts our
// writer writes back to something it reads the same.
func FuzzReadIndex(f *testing.F) {
	f.Add(refIndexBytes(f))
	longpos, err := os.ReadFile(filepath.Join("testdata", "python-longpos.fs.index"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(longpos)
	// python.fs.index less its 8 KB first bucket, which would make the
	// fuzzer spend its time minimizing: pos, then the small buckets.
	py, err := os.ReadFile(filepath.Join("testdata", "python.fs.index"))
	if err != nil {
		f.Fatal(err)
	}
	if i := bytes.Index(py, []byte("\x80\x03C\x06\x00\x00\x00\x00\x00\x01")); i > 0 {
		f.Add(append(py[:8:8], py[i:]...))
	} else {
		f.Fatal("python.fs.index: no bucket for prefix 1")
	}
	f.Add([]byte(proto("}(X\x05\x00\x00\x00index}u")))
	f.Fuzz(func(t *testing.T, data []byte) {
		pos, x, err := readIndex(bytes.NewReader(data), "fuzz.index", int64(len(data)))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := encodeIndex(&buf, pos, x); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		pos2, x2, err := readIndex(&buf, "rewritten.index", int64(buf.Len()))
		if err != nil {
			t.Fatalf("cannot read back what was written: %v", err)
		}
		if pos2 != pos || x2.Len() != x.Len() {
			t.Fatalf("read back pos %d with %d entries, want %d with %d", pos2, x2.Len(), pos, x.Len())
		}
		x.Range(func(oid zodb.Oid, p int64) bool {
			if p2, ok := x2.Get(oid); !ok || p2 != p {
				t.Fatalf("oid %s: read back %d, %v; want %d", oid, p2, ok, p)
			}
			return true
		})
	})
}

// benchIndexes are one million oids: "dense" as a storage allocates them
// (16 buckets), "sparse" one per bucket (one million pickles), the worst
// case for the reader.
func benchIndexes() map[string]*Index {
	dense, sparse := newIndexSize(1_000_000), newIndexSize(1_000_000)
	for i := range 1_000_000 {
		dense.Set(zodb.Oid(i), 4+int64(i)*150)
		sparse.Set(zodb.Oid(i)<<16, 4+int64(i)*150)
	}
	return map[string]*Index{"dense": dense, "sparse": sparse}
}

func BenchmarkWriteIndexFile(b *testing.B) {
	for name, x := range benchIndexes() {
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "Data.fs.index")
			for b.Loop() {
				if err := WriteIndexFile(path, 150_000_004, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadIndexFile(b *testing.B) {
	for name, x := range benchIndexes() {
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "Data.fs.index")
			if err := WriteIndexFile(path, 150_000_004, x); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				_, got, err := ReadIndexFile(path)
				if err != nil {
					b.Fatal(err)
				}
				if got.Len() != x.Len() {
					b.Fatalf("read %d entries, want %d", got.Len(), x.Len())
				}
			}
		})
	}
}
