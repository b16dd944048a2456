package frame

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestRead(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 30000) // several chunks
	var wire []byte
	for _, p := range [][]byte{[]byte("zrs3"), {}, big} {
		wire = append(wire, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
		wire = append(wire, p...)
	}
	r := iotest.HalfReader(bytes.NewReader(wire)) // short reads
	for _, want := range [][]byte{[]byte("zrs3"), {}, big} {
		got, err := Read(r, 0)
		if err != nil || !bytes.Equal(got, want) || got == nil {
			t.Fatalf("Read = %d bytes (nil: %v), %v; want %d", len(got), got == nil, err, len(want))
		}
	}
	if _, err := Read(r, 0); err != io.EOF {
		t.Fatalf("at a clean end: %v, want io.EOF", err)
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, wire string
		limit      uint64
		want       error
	}{
		{"cut header", "\x00\x00", 0, io.ErrUnexpectedEOF},
		{"cut payload", "\x00\x00\x00\x05ab", 0, io.ErrUnexpectedEOF},
		{"cut after a chunk", "\x00\x10\x00\x00" + string(make([]byte, readChunk+1)), 0, io.ErrUnexpectedEOF},
	} {
		if _, err := Read(bytes.NewReader([]byte(tc.wire)), tc.limit); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err := Read(bytes.NewReader([]byte("\x00\x00\x00\x41ruok")), 64)
	var te *TooLargeError
	if !errors.As(err, &te) || te.N != 0x41 || te.Limit != 64 {
		t.Fatalf("over the limit: %v (%+v)", err, te)
	}
}

// A declared length with little behind it costs what arrived, give or
// take a chunk, not the declaration: 4 GiB declared, 100 kB sent.
func TestReadMemoryFollowsTheBytesReceived(t *testing.T) {
	wire := append([]byte("\xff\xff\xff\xff"), make([]byte, 100_000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 5
	for range runs {
		if _, err := Read(bytes.NewReader(wire), 0); err != io.ErrUnexpectedEOF {
			t.Fatalf("4 GiB declared, 100 kB sent: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1<<20 {
		t.Errorf("%d bytes allocated per frame of 100 kB declaring 4 GiB", perRun)
	}
}
