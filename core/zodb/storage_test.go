package zodb

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// loadBeforeOnly is a Loader with LoadBefore alone (no AppendLoadBefore).
type loadBeforeOnly struct {
	Loader
	data []byte
	err  error
}

func (l loadBeforeOnly) LoadBefore(context.Context, Oid, Tid) ([]byte, Tid, Tid, error) {
	return l.data, 5, 9, l.err
}

// AppendLoadBefore on a storage without the method appends what
// LoadBefore returns, and leaves dst as it was on an error or on data nil
// (which it reports as not found).
func TestAppendLoadBeforeFallback(t *testing.T) {
	ctx := context.Background()
	dst := []byte("head:")
	out, serial, next, err := AppendLoadBefore(ctx, loadBeforeOnly{data: []byte("data")}, dst, 1, 10)
	if err != nil || string(out) != "head:data" || serial != 5 || next != 9 {
		t.Fatalf("got %q %s %s %v", out, serial, next, err)
	}
	for _, l := range []loadBeforeOnly{{err: ErrNoRevision}, {data: nil}} {
		out, _, _, err := AppendLoadBefore(ctx, l, []byte("head:"), 1, 10)
		if err == nil || !bytes.Equal(out, []byte("head:")) {
			t.Fatalf("%+v: got %q, %v", l, out, err)
		}
		if l.err == nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("data nil: %v, want not found", err)
		}
		if l.err != nil && (!errors.Is(err, l.err) || errors.Is(err, ErrNotFound)) {
			t.Fatalf("%v: became %v", l.err, err) // None for a ZEO client, not a POSKeyError
		}
	}
}
