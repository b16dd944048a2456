package zeo

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// fuzzRoundTrip is the invariant of both decoders: no input panics, and
// whatever decodes encodes; after that one round (which may normalise,
// e.g. flags written as an int by a client, a method name sent as bytes,
// a Python 2 str) decoding and encoding are a fixed point.
func fuzzRoundTrip(t *testing.T, c Codec, p []byte) {
	m, err := c.Decode(p)
	if err != nil {
		if _, ok := err.(*DecodeError); !ok {
			t.Fatalf("error is a %T: %v", err, err)
		}
		return
	}
	b, err := c.Encode(m)
	if err != nil {
		return // a value this encoding cannot carry back (an object in msgpack, a lone surrogate...)
	}
	m2, err := c.Decode(b)
	if errors.Is(err, pyval.ErrTooManyValues) {
		// The canonical form can hold more values per byte than what
		// was sent (ints sent in a wider form, memo references written
		// out as copies), and so be over its budget (see maxValues).
		return
	}
	if err != nil {
		t.Fatalf("re-encoded %+v does not decode: %v", m, err)
	}
	b2, err := c.Encode(m2)
	if err != nil || string(b2) != string(b) {
		t.Fatalf("not a fixed point: %x, %v\nthen %x", b, err, b2)
	}
	m3, err := c.Decode(b2)
	if err != nil || !sameMessage(m2, m3) {
		t.Fatalf("%+v became %+v, %v", m2, m3, err)
	}
}

func seedFuzz(f *testing.F, c Codec) {
	for _, v := range referenceVectors {
		if v.codec == c {
			p, _ := hex.DecodeString(v.hex)
			f.Add(p)
		}
	}
	for _, v := range readWireVectors(f) {
		if v.codec != c || v.length > 2048 {
			continue
		}
		p := v.p
		if p == nil {
			m, err := decodeMessage(v.msg)
			if err != nil {
				f.Fatal(err)
			}
			if p, err = c.Encode(m); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(p)
	}
}

func FuzzDecodePickle(f *testing.F) {
	seedFuzz(f, PickleCodec)
	p, _ := hex.DecodeString("8003284b07895808000000756e646f496e666f4b004b147d5809000000757365725f6e616d65635a6f7065556e646f2e5072656669780a5072656669780a29817d2858060000006c656e6774684b025804000000706174685d28580000000058030000006170706575627387742e")
	f.Add(p) // undoInfo with a ZopeUndo.Prefix
	f.Fuzz(func(t *testing.T, p []byte) {
		fuzzRoundTrip(t, PickleCodec, p)
		// The session's loadBefore fast path agrees with the generic decoder.
		var a loadBeforeArgs
		if parseLoadBefore(p, &a) {
			if want, err := decodePickle(p); err != nil || !sameMessage(loadBeforeMessage(&a), want) {
				t.Fatalf("fast path %x, generic %+v, %v", a, want, err)
			}
		}
	})
}

func FuzzDecodeMsgpack(f *testing.F) {
	seedFuzz(f, MsgpackCodec)
	f.Fuzz(func(t *testing.T, p []byte) { fuzzRoundTrip(t, MsgpackCodec, p) })
}
