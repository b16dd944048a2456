package pyval_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// FuzzUnpickle: no input panics; whatever decodes (and is not a huge
// memo expansion, a cycle or too deep, which TreeSize reports) pickles in
// ZEO's dialect, and after that one round the bytes are a fixed point.
func FuzzUnpickle(f *testing.F) {
	for _, v := range readZeoVectors(f) {
		if len(v.pickle) < 4096 {
			f.Add(v.pickle)
		}
	}
	p, _ := hex.DecodeString(undoInfoPrefix)
	f.Add(p)
	f.Add([]byte("\x80\x03}q\x00(X\x01\x00\x00\x00ah\x00X\x01\x00\x00\x00b]q\x01h\x01au."))
	f.Add([]byte("(U\x01kq\x02U\x02\xe9\xffq\x03L12L\nI01\nF1.5\nt."))
	opts := pyval.UnpickleOptions{Classes: []string{"ZopeUndo.Prefix.Prefix"}}
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := pyval.UnpickleWith(p, opts)
		if err != nil {
			return
		}
		_ = v.String()
		limit := 4*len(p) + 64
		if size, ok := v.TreeSize(limit); !ok {
			if size <= limit {
				t.Fatalf("TreeSize refused %v: %d within %d", v, size, limit)
			}
			return // a huge memo expansion, a cycle, or nesting beyond MaxDepth
		}
		b, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true})
		if err != nil {
			t.Fatalf("%v, a tree TreeSize bounds, does not pickle: %v", v, err)
		}
		v2, err := pyval.UnpickleWith(b, opts)
		if err != nil {
			t.Fatalf("re-pickled %v does not decode: %v", v, err)
		}
		b2, err := pyval.Pickle(v2, pyval.PickleOptions{Protocol: 3, Fast: true})
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not a fixed point: %x, %v\nthen %x", b, err, b2)
		}
		v3, _ := pyval.UnpickleWith(b2, opts)
		if !pyval.Equal(v2, v3) {
			t.Fatalf("%v became %v", v2, v3)
		}
	})
}
