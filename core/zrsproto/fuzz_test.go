package zrsproto

import (
	"bytes"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

func FuzzDecodeControl(f *testing.F) {
	for _, l := range readVectors(f, "vectors.txt") {
		switch l.fields[0] {
		case "msg":
			f.Add(unhex(f, l.fields[2]))
		case "alt":
			f.Add(unhex(f, l.fields[3]))
		case "ext":
			if len(l.fields[3]) < 4000 {
				f.Add(unhex(f, l.fields[3]))
			}
		}
	}
	for _, l := range readVectors(f, "py2-messages.txt") {
		f.Add(unhex(f, l.fields[1]))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeControl(p)
		if err != nil {
			return
		}
		// Whatever decodes must encode, and decode again to the same value.
		b, err := EncodeControl(m)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", m, err)
		}
		m2, err := DecodeControl(b)
		if err != nil || !sameMsg(m, m2) {
			t.Fatalf("round trip: %#v → %#v, %v", m, m2, err)
		}
	})
}

func FuzzStreamReader(f *testing.F) {
	for _, s := range readStreams(f) {
		f.Add(s.wire(), uint64(s.start))
	}
	f.Fuzz(func(t *testing.T, wire []byte, start uint64) {
		sr := NewStreamReader(bytes.NewReader(wire), zodb.Tid(start))
		for i := 0; i < 100; i++ {
			if _, err := sr.ReadTxn(); err != nil {
				return
			}
		}
	})
}

func FuzzReadHandshake(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x06zrs2.1\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x06zrs2.0\x00\x00\x00\x08\x03lk\x90\xf7wwx"))
	f.Add([]byte("\x00\x00\x00\x0fzrs2.1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		proto, start, err := ReadHandshake(bytes.NewReader(p))
		if err == nil && (proto != Proto20 && proto != Proto21 || len(p) < 22 || start.Bytes() != [8]byte(p[14:22])) {
			t.Fatalf("accepted %x as %q %v", p, proto, start)
		}
	})
}
