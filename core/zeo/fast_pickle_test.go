package zeo

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Every loadBefore call in the captured Python transcripts takes the fast
// path and gives what the generic codec gives; any captured reply the fast
// encoder takes, it writes byte for byte. (The captures hold no loadBefore
// reply with its data; the generic encoder, checked against every captured
// message, is the reference for those below.)
func TestFastLoadBeforeTranscripts(t *testing.T) {
	calls, replies := 0, 0
	for _, v := range readWireVectors(t) {
		if v.codec != PickleCodec || v.p == nil {
			continue
		}
		want, err := decodePickle(v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.source, err)
		}
		if m := decodeLoadBefore(v.p); m != nil {
			calls++
			if !sameMessage(m, want) {
				t.Errorf("%s: fast %+v, generic %+v", v.source, m, want)
			}
		} else if want.Name == "loadBefore" {
			t.Errorf("%s: a loadBefore call missed the fast path: %x", v.source, v.p)
		}
		if b, ok := encodeLoadBeforeReply(want); ok {
			replies++
			if !bytes.Equal(b, v.p) {
				t.Errorf("%s: fast reply %x, captured %x", v.source, b, v.p)
			}
		}
	}
	if calls == 0 {
		t.Fatalf("no loadBefore call in the transcripts (%d replies)", replies)
	}
}

func randBytes8(r *rand.Rand) []byte {
	return binary.BigEndian.AppendUint64(nil, r.Uint64())
}

// Random calls and replies: the generic encoder writes exactly the bytes
// the fast decoder expects, and the fast encoder exactly what the generic
// one writes, across the 1-byte / 4-byte length boundary and None ends.
func TestFastLoadBeforeMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		oid, tid := randBytes8(r), randBytes8(r)
		call := &Message{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply, Name: "loadBefore",
			Args: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid))}
		p, err := encodePickle(call)
		if err != nil {
			t.Fatal(err)
		}
		m := decodeLoadBefore(p)
		if m == nil || !sameMessage(m, call) {
			t.Fatalf("call %x: fast decode %+v", p, m)
		}
		n := []int{0, 1, 200, 255, 256, 257, 4000, 70000}[i%8]
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		end := pyval.None()
		if i%3 != 0 {
			end = pyval.Bytes(randBytes8(r))
		}
		reply := &Message{ID: m.ID, Flags: FlagReply, Name: replyMethod,
			Args: pyval.Tuple(pyval.Bytes(data), pyval.Bytes(randBytes8(r)), end)}
		want, err := encodePickle(reply)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := encodeLoadBeforeReply(reply)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("reply with %d bytes of data: fast %x (%v)\ngeneric %x", n, got, ok, want)
		}
	}
}

// One byte changed anywhere in a call: the fast path either declines or,
// inside an oid or tid, decodes what the generic path decodes.
func TestFastLoadBeforeDeclines(t *testing.T) {
	oid, tid := []byte("\x00\x00\x00\x00\x00\x00\x00\x07"), []byte("\x04\r@\xff\xa9\xbaJ#")
	p, _ := encodePickle(&Message{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply,
		Name: "loadBefore", Args: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid))})
	for i := range p {
		q := bytes.Clone(p)
		q[i] ^= 0x20
		m := decodeLoadBefore(q)
		if m == nil {
			continue
		}
		want, err := decodePickle(q)
		if err != nil || !sameMessage(m, want) {
			t.Errorf("byte %d changed: fast %+v, generic %+v, %v", i, m, want, err)
		}
	}
	for _, q := range [][]byte{p[:len(p)-1], append(bytes.Clone(p), '.'), nil} {
		if decodeLoadBefore(q) != nil {
			t.Errorf("%x took the fast path", q)
		}
	}
	// Replies of other shapes are left to the generic encoder.
	for _, m := range []*Message{
		{ID: pyval.Int(3), Flags: FlagReply, Name: replyMethod, Args: pyval.Tuple(pyval.Bytes(nil), pyval.Bytes(tid), pyval.None())},
		{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagError, Name: replyMethod, Args: pyval.Tuple(pyval.Str("x"), pyval.Tuple())},
		{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply, Name: replyMethod, Args: pyval.None()},
		{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply, Name: replyMethod, Args: pyval.Tuple(pyval.Str("s"), pyval.Bytes(tid), pyval.None())},
		{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply, Name: replyMethod, Args: pyval.Tuple(pyval.Bytes(nil), pyval.Bytes(tid[:7]), pyval.None())},
	} {
		if b, ok := encodeLoadBeforeReply(m); ok {
			t.Errorf("%+v took the fast path: %x", m, b)
		}
	}
}

// FuzzLoadBeforeReply: for any data and tids, the fast reply encoder
// writes what the generic pickler writes.
func FuzzLoadBeforeReply(f *testing.F) {
	f.Add([]byte("data"), uint64(1), uint64(2), uint64(3), uint64(4), true)
	f.Add(make([]byte, 300), uint64(0), uint64(0), uint64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, data []byte, oid, tid, start, end uint64, hasEnd bool) {
		b8 := func(x uint64) *pyval.Value { return pyval.Bytes(binary.BigEndian.AppendUint64(nil, x)) }
		e := pyval.None()
		if hasEnd {
			e = b8(end)
		}
		m := &Message{ID: pyval.Tuple(b8(oid), b8(tid)), Flags: FlagReply, Name: replyMethod,
			Args: pyval.Tuple(pyval.Bytes(data), b8(start), e)}
		got, ok := encodeLoadBeforeReply(m)
		want, err := encodePickle(m)
		if !ok || err != nil || !bytes.Equal(got, want) {
			t.Fatalf("fast %x (%v), generic %x (%v)", got, ok, want, err)
		}
	})
}

// TestServeLoadBeforeMatchesGeneric: a loadBefore call in ClientStorage's
// form, which serveLoadBefore answers, and the same call pickled another
// way (a memo put after the msgid), which the generic codec and method
// answer, get byte-identical replies: current and old revisions, data of
// both length forms, no revision before (None), an unknown oid
// (POSKeyError), and a session that has not registered.
func TestServeLoadBeforeMatchesGeneric(t *testing.T) {
	_, addr, _ := newTestServer(t, Options{})
	c := dialTest(t, addr, nil)
	c.register(false)
	oid, big := c.newOid(), c.newOid()
	t1 := c.commit(1, store{oid, 0, []byte("first")}, store{big, 0, bytes.Repeat([]byte("b"), 5000)})
	t2 := c.commit(2, store{oid, t1, []byte("second")})

	fast := func(oid zodb.Oid, before zodb.Tid) []byte {
		p := append([]byte(nil), loadBeforeCall...)
		for i, v := range []uint64{uint64(oid), uint64(before), uint64(oid), uint64(before)} {
			binary.BigEndian.PutUint64(p[loadBeforeSlots[i]:], v)
		}
		return p
	}
	generic := func(p []byte) []byte {
		// BINPUT 0 after the msgid tuple: the same call, not the fast form.
		q := append([]byte(nil), p[:24]...)
		q = append(q, 'q', 0)
		q = append(q, p[24:]...)
		if m, err := decodePickle(q); err != nil || m.Name != "loadBefore" {
			t.Fatalf("variant does not decode as loadBefore: %v", err)
		}
		return q
	}
	cases := []struct {
		name   string
		oid    zodb.Oid
		before zodb.Tid
	}{
		{"current", oid, zodb.MaxTid},
		{"old revision", oid, t2},
		{"none before", oid, t1},
		{"large data", big, zodb.MaxTid},
		{"unknown oid", 0x7777, zodb.MaxTid},
	}
	check := func(r *rawSession, what string) {
		for _, tc := range cases {
			p := fast(tc.oid, tc.before)
			var a loadBeforeArgs
			if !parseLoadBefore(p, &a) {
				t.Fatalf("%s: the test's call is not in the fast form", tc.name)
			}
			got, want := r.roundTrip(p), r.roundTrip(generic(p))
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: fast path replied\n%x\ngeneric path\n%x", what, tc.name, got, want)
			}
		}
	}
	r := dialRaw(t, addr)
	r.roundTrip(mustEncode(t, &Message{ID: pyval.Int(1), Flags: FlagReply, Name: "register",
		Args: pyval.Tuple(pyval.Str("1"), pyval.Bool(false))}))
	check(r, "registered")
	check(dialRaw(t, addr), "unregistered")
}

// rawSession is a pickle-codec connection that exchanges frames as bytes.
type rawSession struct {
	t    testing.TB
	conn net.Conn
}

func dialRaw(t testing.TB, addr net.Addr) *rawSession {
	t.Helper()
	conn, err := net.DialTimeout(addr.Network(), addr.String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout))
	p, err := ReadFrame(conn, 64)
	if err != nil || string(p) != "Z5" {
		t.Fatalf("server announced %q (%v)", p, err)
	}
	if _, err := conn.Write(AppendFrame(nil, p)); err != nil {
		t.Fatal(err)
	}
	return &rawSession{t: t, conn: conn}
}

// roundTrip sends one frame and returns the payload of the next frame.
func (r *rawSession) roundTrip(p []byte) []byte {
	r.t.Helper()
	if _, err := r.conn.Write(AppendFrame(nil, p)); err != nil {
		r.t.Fatal(err)
	}
	q, err := ReadFrame(r.conn, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	return q
}

func mustEncode(t testing.TB, m *Message) []byte {
	t.Helper()
	p, err := pickleCodec{}.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
