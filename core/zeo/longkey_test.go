package zeo

import (
	"errors"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/pyval"
)

// A msgpack map whose key's canonical form is over 64 KiB is a decode
// error, not a panic (which the server would log as a bug in zrs, for any
// client that sends one frame).
func TestMsgpackLongMapKeyIsADecodeError(t *testing.T) {
	msg := &Message{ID: pyval.Int(1), Flags: FlagReply, Name: "tpc_begin",
		Args: pyval.Tuple(pyval.Int(1), pyval.Bytes(nil), pyval.Bytes(nil), pyval.Dict(pyval.Str("a"), pyval.Int(1)))}
	p, err := MsgpackCodec.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(p), "\xa1a") // the fixstr key "a"
	if i < 0 {
		t.Fatalf("key not found in %x", p)
	}
	q := []byte(string(p[:i]) + "\xdb\x00\x01\x11\x70" + strings.Repeat("k", 70000) + string(p[i+2:])) // str32 of 70000
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Decode panicked: %v", r)
		}
	}()
	_, err = MsgpackCodec.Decode(q)
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "dict key too large") {
		t.Fatalf("decode of a 70000-byte map key: %v, want a DecodeError about the key", err)
	}
}
