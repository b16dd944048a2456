package zrsproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

func nativeTxns(n int) []*zodb.TxnInfo {
	var out []*zodb.TxnInfo
	for i := range n {
		tid := zodb.Tid(0x03e0000000000000 + uint64(i)*1000)
		info := &zodb.TxnInfo{Tid: tid, Status: zodb.StatusCommitted, Pos: -1,
			TxnMeta: zodb.TxnMeta{User: []byte("/ u"), Description: []byte(strings.Repeat("d", i))}}
		for j := range i % 4 {
			var data []byte
			if j != 2 {
				data = bytes.Repeat([]byte{byte(i)}, 100*(j+1))
			}
			info.Records = append(info.Records, zodb.DataRecord{Oid: zodb.Oid(j), Tid: tid, Data: data})
		}
		out = append(out, info)
	}
	return out
}

func TestNativeStreamRoundTrip(t *testing.T) {
	for _, terms := range []Terms{{}, {Compression: CompressionZstd}, {Checksum: ChecksumXXH64}, {Compression: CompressionZstd, Checksum: ChecksumXXH64, Oids: true}, {Oids: true}} {
		comp := terms.Compression
		t.Run(fmt.Sprintf("compression=%s,checksum=%s,oids=%v", comp, terms.Checksum, terms.Oids), func(t *testing.T) {
			var buf bytes.Buffer
			start := zodb.Tid(42)
			nw, err := NewNativeWriter(&buf, start, terms)
			if err != nil {
				t.Fatal(err)
			}
			txns := nativeTxns(50)
			hb := Heartbeat{Last: 7, Time: time.Unix(1700000000, 123), Oids: 0x1234_5678_9abc}
			wantOids := zodb.Oid(0) // without the term, heartbeats leave the oids out
			if terms.Oids {
				wantOids = hb.Oids
			}
			for i, info := range txns {
				if err := nw.WriteTxn(info); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					if err := nw.WriteHeartbeat(hb); err != nil {
						t.Fatal(err)
					}
				}
				if err := nw.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			nw.Close()
			raw := buf.Len()
			nr, err := NewNativeReader(&buf, start, terms)
			if err != nil {
				t.Fatal(err)
			}
			defer nr.Close()
			var got []*zodb.TxnInfo
			beats := 0
			for {
				info, h, err := nr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h != nil {
					beats++
					if h.Last != hb.Last || !h.Time.Equal(hb.Time) || h.Oids != wantOids {
						t.Errorf("heartbeat %+v, want %+v", h, hb)
					}
					continue
				}
				got = append(got, info)
			}
			if beats != 5 || !reflect.DeepEqual(got, txns) {
				t.Fatalf("%d heartbeats, %d transactions; want 5 and the 50 sent", beats, len(got))
			}
			t.Logf("%s: %d bytes on the wire", comp, raw)
		})
	}
}

// A flipped bit anywhere in a compressed stream is an error, never a
// transaction with different content.
func TestNativeStreamCorruption(t *testing.T) {
	var buf bytes.Buffer
	nw, _ := NewNativeWriter(&buf, 0, Terms{Compression: CompressionZstd})
	txns := nativeTxns(20)
	for _, info := range txns {
		nw.WriteTxn(info)
		nw.Flush()
	}
	clean := buf.Bytes()
	for off := 0; off < len(clean); off += 7 {
		b := bytes.Clone(clean)
		b[off] ^= 1 << (off % 8)
		nr, err := NewNativeReader(bytes.NewReader(b), 0, Terms{Compression: CompressionZstd})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			info, _, err := nr.Next()
			if err != nil {
				// Only a flip that changed nothing the reader keeps may
				// end the stream cleanly, after all it carries.
				if errors.Is(err, io.EOF) && got < len(txns) {
					t.Fatalf("bit flip at %d: the stream ended cleanly after %d of %d transactions", off, got, len(txns))
				}
				break
			}
			if info != nil {
				if !reflect.DeepEqual(info, txns[got]) {
					t.Fatalf("bit flip at %d: transaction %d decoded with different content", off, got)
				}
				got++
			}
		}
		nr.Close()
	}
}

func TestHelloWelcomeRoundTrip(t *testing.T) {
	id := Identity{First: 0x03e0000000000001, Sum: [16]byte{1, 2, 3}}
	h := &Hello{Version: 1, Database: id, Position: &Position{Tid: 5, Full: Digest{9}, Meta: Digest{8}},
		Compression: []string{CompressionZstd}, Acks: true}
	p, err := EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHello(p)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("hello %s decoded to %+v, %v", p, got, err)
	}
	w := &Welcome{Version: 1, Database: id, Last: 77, Compression: CompressionZstd, HeartbeatMillis: 2000}
	p, _ = EncodeWelcome(w)
	gw, err := DecodeWelcome(p)
	if err != nil || !reflect.DeepEqual(gw, w) {
		t.Fatalf("welcome %s decoded to %+v, %v", p, gw, err)
	}
	empty, _ := EncodeHello(&Hello{Version: 1})
	if h, err := DecodeHello(empty); err != nil || !h.Database.IsZero() || h.Position != nil {
		t.Fatalf("empty hello %s: %+v, %v", empty, h, err)
	}
	for _, bad := range []string{`{}`, `{"version":1,"database":"zz"}`, `{"version":1,"position":{"tid":"0"}}`, `[`,
		`{"version":1,"position":{"tid":"5","full":"00"}}`} {
		if _, err := DecodeHello([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("hello %s: %v, want ErrProtocol", bad, err)
		}
	}
	if _, err := DecodeWelcome([]byte(`{"version":1,"compression":"lz4"}`)); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown compression accepted: %v", err)
	}
}

func TestAckHeartbeatCodec(t *testing.T) {
	if tid, err := DecodeAck(EncodeAck(0x1234)); err != nil || tid != 0x1234 {
		t.Fatalf("ack: %v %v", tid, err)
	}
	h := Heartbeat{Last: 5, Time: time.Unix(0, 77), Oids: 1 << 40}
	if got, err := DecodeHeartbeat(EncodeHeartbeatOids(h)); err != nil || got != h {
		t.Fatalf("heartbeat with oids: %+v %v, want %+v", got, err, h)
	}
	if got, err := DecodeHeartbeat(EncodeHeartbeat(h)); err != nil || got.Oids != 0 || got.Last != h.Last {
		t.Fatalf("heartbeat without oids: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {'A'}, append([]byte{'B'}, make([]byte, 8)...), make([]byte, 10),
		append([]byte{'H'}, make([]byte, 20)...), append([]byte{'H'}, make([]byte, 25)...)} {
		if _, err := DecodeAck(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("ack %x: %v", bad, err)
		}
		if _, err := DecodeHeartbeat(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("heartbeat %x: %v", bad, err)
		}
	}
}

// The digests are the same for a transaction as stored by Python (an
// old protocol-1 extension pickle) and as a zrs replica stores it (the
// dict re-pickled), and differ when any logical field differs.
func TestTxnDigests(t *testing.T) {
	ext, err := extensionDict([]byte("}q\x00U\x01kq\x01U\x01vq\x02s."))
	if err != nil {
		t.Fatal(err)
	}
	replica, _ := extensionBytes(ext)
	base := nativeTxns(4)[3]
	base.Extension = []byte("}q\x00U\x01kq\x01U\x01vq\x02s.")
	copyOf := func(f func(*zodb.TxnInfo)) *zodb.TxnInfo {
		c := *base
		c.Records = append([]zodb.DataRecord(nil), base.Records...)
		f(&c)
		return &c
	}
	f0, m0 := TxnDigests(base)
	if f, m := TxnDigests(copyOf(func(c *zodb.TxnInfo) { c.Extension = replica; c.Pos = 99; c.Records[0].DataTxn = 3 })); f != f0 || m != m0 {
		t.Fatal("replica form or layout changes the digests")
	}
	meta := map[string]func(*zodb.TxnInfo){
		"tid":         func(c *zodb.TxnInfo) { c.Tid++ },
		"user":        func(c *zodb.TxnInfo) { c.User = []byte("x") },
		"description": func(c *zodb.TxnInfo) { c.Description = []byte("other") },
		"extension":   func(c *zodb.TxnInfo) { c.Extension = []byte("}q\x00U\x01kq\x01U\x01wq\x02s.") },
	}
	for name, f := range map[string]func(*zodb.TxnInfo){
		"status": func(c *zodb.TxnInfo) { c.Status = zodb.StatusPacked },
		"data":   func(c *zodb.TxnInfo) { c.Records[0].Data = []byte("other") },
		"nil":    func(c *zodb.TxnInfo) { c.Records[0].Data = nil },
		"oid":    func(c *zodb.TxnInfo) { c.Records[0].Oid = 99 },
		"record": func(c *zodb.TxnInfo) { c.Records = c.Records[1:] },
	} {
		if fd, _ := TxnDigests(copyOf(f)); fd == f0 {
			t.Errorf("%s change leaves the full digest", name)
		}
	}
	for name, f := range meta {
		if fd, m := TxnDigests(copyOf(f)); fd == f0 || m == m0 {
			t.Errorf("%s change leaves the full digest (%v) or the meta digest (%v)", name, fd == f0, m == m0)
		}
	}
	if _, m := TxnDigests(copyOf(func(c *zodb.TxnInfo) { c.Status = zodb.StatusPacked; c.Records = nil })); m != m0 {
		t.Error("pack changes the meta digest")
	}
}

// The xxh64 chain catches what MD5 catches: a changed byte, a dropped
// frame, and a reader that disagrees on the checksum.
func TestNativeXXH64ChecksumDetectsCorruption(t *testing.T) {
	var buf bytes.Buffer
	terms := Terms{Checksum: ChecksumXXH64}
	nw, _ := NewNativeWriter(&buf, 1, terms)
	for _, info := range nativeTxns(3) {
		nw.WriteTxn(info)
	}
	nw.Flush()
	good := buf.Bytes()
	readAll := func(p []byte, t Terms) error {
		nr, err := NewNativeReader(bytes.NewReader(p), 1, t)
		if err != nil {
			return err
		}
		defer nr.Close()
		for {
			if _, _, err := nr.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	if err := readAll(good, terms); err != nil {
		t.Fatalf("intact stream: %v", err)
	}
	// A byte of record data: nothing but the checksum can tell.
	bad := bytes.Clone(good)
	at := bytes.Index(bad, bytes.Repeat([]byte{2}, 100))
	if at < 0 {
		t.Fatal("test set-up: no record data of transaction 2 in the stream")
	}
	bad[at+50] ^= 1
	if err := readAll(bad, terms); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a flipped byte of record data: %v, want ErrChecksum", err)
	}
	// A whole transaction dropped (its T to its C): the next one's
	// checksum covers the chain.
	var frames [][]byte
	for p := good; len(p) > 0; {
		n := 4 + int(binary.BigEndian.Uint32(p))
		frames, p = append(frames, p[:n]), p[n:]
	}
	var begins []int
	for i, f := range frames {
		if m, err := DecodeControl(f[4:]); err == nil {
			if _, ok := m.(TxnBegin); ok {
				begins = append(begins, i)
			}
		}
	}
	if len(begins) != 3 {
		t.Fatalf("test set-up: %d transactions in the stream, want 3", len(begins))
	}
	dropped := slices.Concat(slices.Concat(frames[:begins[1]]...), slices.Concat(frames[begins[2]:]...))
	if err := readAll(dropped, terms); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a dropped transaction: %v, want ErrChecksum", err)
	}
	if err := readAll(good, Terms{}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("xxh64 stream read with md5: %v", err)
	}
	if _, err := NewChecksumOf("crc", 0); err == nil {
		t.Fatal("unknown checksum accepted")
	}
}

// Heartbeats are frames of the stream: an error after some names the bad
// frame by its place on the connection, as FrameError promises.
func TestNativeFrameNumbersCountHeartbeats(t *testing.T) {
	var buf bytes.Buffer
	nw, err := NewNativeWriter(&buf, 0, Terms{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := nw.WriteHeartbeat(Heartbeat{Last: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, []byte("not a pickle")); err != nil {
		t.Fatal(err)
	}
	nr, err := NewNativeReader(&buf, 0, Terms{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, hb, err := nr.Next(); err != nil || hb == nil {
			t.Fatalf("frame %d: %v %v; want a heartbeat", i+1, hb, err)
		}
	}
	_, _, err = nr.Next()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Frame != 3 {
		t.Fatalf("error %v; want frame 3 named", err)
	}
}

// The digests cover an extension's value, not the bytes a file holds: a
// primary whose extension shares one str between two keys (as
// pickle.dumps writes it when an application sets the same object
// twice), the replica a zc.zrs primary made of it (T messages carry no
// sharing), the replica a zrs primary made, and a Python 2 file's
// protocol-1 form all agree, so a secondary resuming over zrs3 is not
// taken for diverged. A different value still differs.
func TestDigestsCoverTheExtensionValue(t *testing.T) {
	// pickle.dumps({'a': s, 'b': s}, 3) with s one str object
	shared := []byte("\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01X\x05\x00\x00\x00aliceq\x02X\x01\x00\x00\x00bq\x03h\x02u.")
	// the same dict with two equal str objects
	unshared := []byte("\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01X\x05\x00\x00\x00aliceq\x02X\x01\x00\x00\x00bq\x03X\x05\x00\x00\x00aliceq\x04u.")
	// Python 2: cPickle.dumps({'a': 'alice', 'b': 'alice'}, 1)
	py2 := []byte("}q\x00(U\x01aq\x01U\x05aliceq\x02U\x01bq\x03h\x02u.")
	viaT := func(stored []byte) []byte {
		b, err := EncodeControl(&TxnBegin{Tid: 5, Status: ' ', Extension: stored})
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeControl(b)
		if err != nil {
			t.Fatal(err)
		}
		return m.(TxnBegin).Extension
	}
	pos := func(ext []byte) *Position {
		return PositionOf(&zodb.TxnInfo{Tid: 5, Status: ' ', TxnMeta: zodb.TxnMeta{Extension: ext}})
	}
	want := pos(shared)
	for name, ext := range map[string][]byte{
		"unshared": unshared, "python 2": py2, "replica of shared": viaT(shared),
		"replica of python 2": viaT(py2),
	} {
		if got := pos(ext); got.Meta != want.Meta || got.Full != want.Full {
			t.Errorf("%s %q: digests differ from the shared form's", name, ext)
		}
	}
	other := []byte("\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01X\x05\x00\x00\x00aliceq\x02X\x01\x00\x00\x00bq\x03X\x03\x00\x00\x00bobq\x04u.")
	if pos(other).Meta == want.Meta {
		t.Error("a different extension has the same digest")
	}
}

// For every extension holding objects in core/pyval's CPython vectors,
// the nodes that can hold one transaction compute the same digests: a
// zrs primary on the file Python wrote, a zrs secondary of a zc.zrs
// primary (from the T message CPython writes), a zrs secondary of a zrs
// primary, and a Python secondary promoted (what CPython stores after
// loading T). Otherwise a zrs3 secondary would be refused as diverged.
func TestDigestsAgreeForExtensionObjects(t *testing.T) {
	f, err := os.ReadFile("../pyval/testdata/ext-objects.txt")
	if err != nil {
		t.Fatal(err)
	}
	replica := func(tmsg []byte) []byte {
		m, err := DecodeControl(tmsg)
		if err != nil {
			t.Fatalf("DecodeControl: %v", err)
		}
		return m.(TxnBegin).Extension
	}
	pos := func(ext []byte) *Position {
		return PositionOf(&zodb.TxnInfo{Tid: 5, Status: ' ', TxnMeta: zodb.TxnMeta{Extension: ext}})
	}
	n := 0
	for line := range strings.SplitSeq(string(f), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 5 || fields[0] != "ext" {
			continue
		}
		n++
		name := fields[1]
		stored, t1, back := unhex(t, fields[2]), unhex(t, fields[3]), unhex(t, fields[4])
		// The T message a zc.zrs primary sends, in fast mode: its
		// empty-extension form with the dict CPython pickled in place of
		// the empty one.
		empty, err := EncodeControl(&TxnBegin{Tid: 5, Status: ' '})
		if err != nil || !bytes.HasSuffix(empty, []byte("}tt.")) {
			t.Fatalf("T with no extension: %q, %v", empty, err)
		}
		zcT := append(append(bytes.TrimSuffix(empty, []byte("}tt.")), t1[:len(t1)-1]...), "tt."...)
		ownT, err := EncodeControl(&TxnBegin{Tid: 5, Status: ' ', Extension: stored})
		if err != nil {
			t.Errorf("%s: EncodeControl: %v", name, err)
			continue
		}
		want := pos(stored)
		for from, ext := range map[string][]byte{
			"zrs secondary of zc.zrs": replica(zcT), "zrs secondary of zrs": replica(ownT), "python secondary": back,
		} {
			if got := pos(ext); got.Meta != want.Meta || got.Full != want.Full {
				t.Errorf("%s: a %s has other digests than the primary", name, from)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d vectors", n)
	}
	// (These extensions hold only objects, which the digests leave out:
	// that the digests cover the extension's plain items is
	// TestDigestsCoverTheExtensionValue's to show.)
}
