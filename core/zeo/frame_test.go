package zeo

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrames(t *testing.T) {
	var wire []byte
	payloads := [][]byte{[]byte("Z5"), {}, bytes.Repeat([]byte{7}, 200000)}
	for _, p := range payloads {
		wire = AppendFrame(wire, p)
	}
	if !bytes.HasPrefix(wire, []byte("\x00\x00\x00\x02Z5\x00\x00\x00\x00\x00\x03\x0d\x40")) {
		t.Fatalf("wire starts %x", wire[:14])
	}
	r := bytes.NewReader(wire)
	for _, want := range payloads {
		got, err := ReadFrame(r, 1<<20)
		if err != nil || !bytes.Equal(got, want) || got == nil {
			t.Fatalf("ReadFrame = %d bytes, %v; want %d", len(got), err, len(want))
		}
	}
	if _, err := ReadFrame(r, 0); err != io.EOF {
		t.Errorf("at the end: %v", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	if _, err := ReadFrame(bytes.NewReader([]byte("\x00\x00\x00\x41ruok")), 64); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	for name, wire := range map[string]string{
		"cut header":  "\x00\x00",
		"cut payload": "\x00\x00\x00\x05ab",
		// A 4 GiB declaration with nothing behind it: an error, not a 4 GiB allocation.
		"huge declared": "\xff\xff\xff\xff",
	} {
		if _, err := ReadFrame(bytes.NewReader([]byte(wire)), 0); err != io.ErrUnexpectedEOF {
			t.Errorf("%s: %v", name, err)
		}
	}
	// What it allocates is bounded by what arrived, give or take a chunk.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 5
	for range runs {
		ReadFrame(bytes.NewReader([]byte("\xff\xff\xff\xff")), 0)
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 256<<10 {
		t.Errorf("%d bytes allocated for a bare huge header", perRun)
	}
}
