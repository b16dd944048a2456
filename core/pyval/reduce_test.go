package pyval_test

import (
	"encoding/hex"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// A dict subclass with __reduce__ returning (dict, (items,)) pickles as a
// call of builtins.dict; ZODB's iterator tests send one as a transaction
// extension. Pickles from CPython 3.11, protocols 1-3.
func TestReduceToBuiltinDict(t *testing.T) {
	for _, h := range []string{
		"635f5f6275696c74696e5f5f0a646963740a71002828285803000000666f6f71014b017471022858030000006261727103635f636f646563730a656e636f64650a710428580100000078710558060000006c6174696e31710674710752710874710974710a74710b52710c2e",
		"8002635f5f6275696c74696e5f5f0a646963740a71005803000000666f6f71014b0186710258030000006261727103635f636f646563730a656e636f64650a7104580100000078710558060000006c6174696e31710686710752710886710986710a85710b52710c2e",
		"8003636275696c74696e730a646963740a71005803000000666f6f71014b018671025803000000626172710343017871048671058671068571075271082e",
	} {
		p, _ := hex.DecodeString(h)
		v, err := pyval.Unpickle(p)
		if err != nil {
			t.Fatalf("%s: %v", h[:24], err)
		}
		want := pyval.Dict(pyval.Str("foo"), pyval.Int(1), pyval.Str("bar"), pyval.Bytes([]byte("x")))
		if !pyval.Equal(v, want) {
			t.Errorf("%s: got %s, want %s", h[:24], v, want)
		}
		ext, err := pyval.ExtensionBytes(v)
		back, err2 := pyval.ExtensionDict(ext)
		if err != nil || err2 != nil || !pyval.Equal(back, want) {
			t.Errorf("extension bytes of %s: %q (%v) read back as %v (%v)", v, ext, err, back, err2)
		}
	}
	for _, bad := range []string{
		"8003636275696c74696e730a646963740a4b0185522e", // dict(1)
		"8003636275696c74696e730a6f70656e0a29522e",     // open()
	} {
		p, _ := hex.DecodeString(bad)
		if _, err := pyval.Unpickle(p); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
