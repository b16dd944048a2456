package zrsproto

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// genericStore is the S pickle as the generic codec writes it.
func genericStore(t *testing.T, m *Store) []byte {
	t.Helper()
	b, err := pyval.Pickle(message("S", storeFields(m)...), pyval.PickleOptions{Protocol: 1, Fast: true, Max: maxControl})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreFastPathMatchesGeneric: the S fast paths write the generic
// codec's bytes and read back what the generic decoder reads, for values
// with every byte class (ASCII, 0x80-0xff, zero), and the decoder gives up
// (falling back to the generic path) on anything else.
func TestStoreFastPathMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Uint64N(256)
		case 1:
			return rng.Uint64() | 0x8080808080808080
		default:
			return rng.Uint64()
		}
	}
	for i := range 5000 {
		m := Store{Oid: zodb.Oid(pick()), Tid: zodb.Tid(pick())}
		if i%2 == 0 {
			m.DataTxn = zodb.Tid(pick() | 1)
		}
		fast := appendStore(nil, &m)
		if want := genericStore(t, &m); !bytes.Equal(fast, want) {
			t.Fatalf("%+v: fast %x, generic %x", m, fast, want)
		}
		got, ok := decodeStoreFast(fast)
		if !ok || got != m {
			t.Fatalf("%+v: fast decode %+v %v", m, got, ok)
		}
		v, err := pyval.Unpickle(fast)
		if err != nil {
			t.Fatal(err)
		}
		gen, err := decodeStore(v.Items()[1].Items(), 4)
		if err != nil || gen != m {
			t.Fatalf("%+v: generic decode %+v %v", m, gen, err)
		}
		// Every truncation and single-byte change either decodes to
		// what the generic decoder says or is left to it.
		cut := fast[:rng.IntN(len(fast))]
		if _, ok := decodeStoreFast(cut); ok {
			t.Fatalf("truncated S %x decoded", cut)
		}
		// Bytes after the message (after STOP) are the generic
		// decoder's to refuse.
		if _, ok := decodeStoreFast(append(bytes.Clone(fast), "junk"[:1+rng.IntN(4)]...)); ok {
			t.Fatalf("S %x with bytes after it decoded", fast)
		}
		bad := bytes.Clone(fast)
		bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		if fm, ok := decodeStoreFast(bad); ok {
			gv, err := pyval.Unpickle(bad)
			if err != nil {
				t.Fatalf("fast path accepted %x, which the generic decoder refuses: %v", bad, err)
			}
			gm, err := decodeStore(gv.Items()[1].Items(), 4)
			if err != nil || gm != fm {
				t.Fatalf("fast %+v, generic %+v %v for %x", fm, gm, err, bad)
			}
		}
	}
}
