package zrsproto

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/zrs-replication/zrs/core/zodb"
)

func TestFrameRoundTrip(t *testing.T) {
	const readChunk = 64 << 10 // the step in which internal/frame allocates
	for _, n := range []int{0, 1, 4096, 4097, readChunk, 3*readChunk + 5} {
		p := bytes.Repeat([]byte{0xa5}, n)
		var b bytes.Buffer
		if err := WriteFrame(&b, p); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFrame(iotest.HalfReader(&b), 0)
		if err != nil || !bytes.Equal(got, p) || got == nil {
			t.Fatalf("n=%d: got %d bytes, %v", n, len(got), err)
		}
		if _, err := ReadFrame(&b, 0); err != io.EOF {
			t.Errorf("after the frame: %v, want io.EOF", err)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	if _, err := ReadFrame(strings.NewReader("\x00\x00"), 0); err != io.ErrUnexpectedEOF {
		t.Errorf("short header: %v", err)
	}
	if _, err := ReadFrame(strings.NewReader("\x00\x00\x00\x05abc"), 0); err != io.ErrUnexpectedEOF {
		t.Errorf("short payload: %v", err)
	}
	// Spec §2.2: the primary refuses 15 > 8 without reading the payload.
	_, err := ReadFrame(strings.NewReader("\x00\x00\x00\x0f"), 8)
	if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrProtocol) {
		t.Errorf("oversize: %v", err)
	}
	if _, err := ReadFrame(strings.NewReader("\x00\x00\x00\x08abcdefgh"), 8); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

// TestFrameHugeDeclaredLength: a 4 GiB length with a few bytes behind it
// fails without allocating the declared size.
func TestFrameHugeDeclaredLength(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 5
	for range runs {
		if _, err := ReadFrame(strings.NewReader("\xff\xff\xff\xffabc"), 0); err != io.ErrUnexpectedEOF {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 256<<10 {
		t.Errorf("%d bytes allocated for a frame of 3 bytes declaring 4 GiB", perRun)
	}
}

// TestHandshakeVector: the bytes of spec §2.3's example.
func TestHandshakeVector(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHandshake(&b, Proto21, 0); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b.Bytes()); got != "000000067a7273322e31000000080000000000000000" {
		t.Fatalf("handshake %s", got)
	}
	proto, start, err := ReadHandshake(iotest.OneByteReader(&b))
	if proto != Proto21 || start != 0 || err != nil {
		t.Fatalf("%q %v %v", proto, start, err)
	}
	b.Reset()
	WriteHandshake(&b, Proto20, 0x036c6b90f7777778)
	if proto, start, err := ReadHandshake(&b); proto != Proto20 || start != 0x036c6b90f7777778 || err != nil {
		t.Fatalf("%q %v %v", proto, start, err)
	}
}

// TestHandshakeErrors: the primary's refusals of spec §2.3 and the
// input-error test of zc.zrs (oversize first or second frame, 7-byte tid).
func TestHandshakeErrors(t *testing.T) {
	frame := func(s string) string {
		var b bytes.Buffer
		WriteFrame(&b, []byte(s))
		return b.String()
	}
	tid8 := frame("\x00\x00\x00\x00\x00\x00\x00\x00")
	cases := []struct {
		name, in  string
		frame     int64
		wantProto string
		want      error
	}{
		{"empty protocol", frame("") + tid8, 1, "", ErrProtocol},
		{"unknown protocol", frame("zrs3.0") + tid8, 1, "zrs3.0", ErrProtocol},
		{"oversize protocol", frame("zrs2.1 and more") + tid8, 1, "", ErrFrameTooLarge},
		{"oversize tid", frame("zrs2.1") + frame("123456789012345"), 2, "zrs2.1", ErrFrameTooLarge},
		{"7-byte tid", frame("zrs2.1") + frame("1234567"), 2, "zrs2.1", ErrProtocol},
		{"no tid", frame("zrs2.1"), 2, "zrs2.1", io.ErrUnexpectedEOF},
		{"nothing", "", 1, "", io.EOF},
	}
	for _, c := range cases {
		proto, _, err := ReadHandshake(strings.NewReader(c.in))
		var fe *FrameError
		if !errors.Is(err, c.want) || !errors.As(err, &fe) || fe.Frame != c.frame || proto != c.wantProto {
			t.Errorf("%s: proto %q, err %v", c.name, proto, err)
		}
	}
}

func TestChecksum(t *testing.T) {
	c := NewChecksum(0)
	c.Add([]byte("abc"))
	got := c.Sum()
	if got != md5.Sum([]byte("\x00\x00\x00\x00\x00\x00\x00\x00abc")) {
		t.Errorf("Sum = %x", got)
	}
	c2 := NewChecksum(0)
	c2.Add([]byte("ab"))
	c2.Add([]byte("c"))
	if c2.Sum() != got || c.Sum() != got {
		t.Errorf("Sum is not a pure function of the bytes added")
	}
	if NewChecksum(1).Sum() == NewChecksum(zodb.ZeroTid).Sum() {
		t.Errorf("seed ignored")
	}
}
