package zeo

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Every loadBefore call in the captured Python transcripts is in the form
// the session's fast path recognises, with the values the generic codec
// decodes.
func TestParseLoadBeforeTranscripts(t *testing.T) {
	calls := 0
	for _, v := range readWireVectors(t) {
		if v.codec != PickleCodec || v.p == nil {
			continue
		}
		want, err := decodePickle(v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.source, err)
		}
		var a loadBeforeArgs
		switch ok := parseLoadBefore(v.p, &a); {
		case ok:
			calls++
			if !sameMessage(loadBeforeMessage(&a), want) {
				t.Errorf("%s: parsed %x, generic %+v", v.source, a, want)
			}
		case want.Name == "loadBefore":
			t.Errorf("%s: a loadBefore call missed the fast path: %x", v.source, v.p)
		}
	}
	if calls == 0 {
		t.Fatal("no loadBefore call in the transcripts")
	}
}

// loadBeforeMessage is the call parseLoadBefore read into a, as the
// generic codec decodes it.
func loadBeforeMessage(a *loadBeforeArgs) *Message {
	b := func(i int) *pyval.Value { return pyval.Bytes(bytes.Clone(a[i][:])) }
	return &Message{ID: pyval.Tuple(b(0), b(1)), Flags: FlagReply, Name: "loadBefore", Args: pyval.Tuple(b(2), b(3))}
}

// loadBeforeFrame builds the reply frame to the call with msgid (oid,
// tid) as serveLoadBefore does, or reports false.
func loadBeforeFrame(oid, tid, data []byte, start, end zodb.Tid) ([]byte, bool) {
	f := loadBeforeFrameHead(oid, tid)
	mark := len(f)
	return finishLoadBeforeFrame(append(f, data...), mark, start, end)
}

// genericLoadBeforeFrame is the same reply through the generic pickler.
func genericLoadBeforeFrame(t testing.TB, oid, tid, data []byte, start, end zodb.Tid) []byte {
	t.Helper()
	b8 := func(x zodb.Tid) *pyval.Value { return pyval.Bytes(binary.BigEndian.AppendUint64(nil, uint64(x))) }
	e := pyval.None()
	if end != 0 {
		e = b8(end)
	}
	p, err := encodePickle(&Message{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply,
		Name: replyMethod, Args: pyval.Tuple(pyval.Bytes(data), b8(start), e)})
	if err != nil {
		t.Fatal(err)
	}
	return AppendFrame(nil, p)
}

func randBytes8(r *rand.Rand) []byte {
	return binary.BigEndian.AppendUint64(nil, r.Uint64())
}

// Random calls and replies: the fast path parses exactly the calls the
// generic encoder writes, and builds exactly the reply frames it writes,
// across the 1-byte / 4-byte length boundary and None ends.
func TestLoadBeforeFrameMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		oid, tid := randBytes8(r), randBytes8(r)
		call := &Message{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply, Name: "loadBefore",
			Args: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid))}
		p, err := encodePickle(call)
		if err != nil {
			t.Fatal(err)
		}
		var a loadBeforeArgs
		if !parseLoadBefore(p, &a) || !sameMessage(loadBeforeMessage(&a), call) {
			t.Fatalf("call %x: parsed %v %x", p, parseLoadBefore(p, &a), a)
		}
		n := []int{0, 1, 200, 255, 256, 257, 4000, 70000}[i%8]
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		start, end := zodb.Tid(r.Uint64()), zodb.Tid(0)
		if i%3 != 0 {
			end = zodb.Tid(r.Uint64() | 1)
		}
		got, ok := loadBeforeFrame(oid, tid, data, start, end)
		if want := genericLoadBeforeFrame(t, oid, tid, data, start, end); !ok || !bytes.Equal(got, want) {
			t.Fatalf("reply with %d bytes of data: fast %x (%v)\ngeneric %x", n, got, ok, want)
		}
	}
}

// One byte changed anywhere in a call: the fast path either declines or,
// inside an oid or tid, parses what the generic path decodes.
func TestParseLoadBeforeDeclines(t *testing.T) {
	oid, tid := []byte("\x00\x00\x00\x00\x00\x00\x00\x07"), []byte("\x04\r@\xff\xa9\xbaJ#")
	p, _ := encodePickle(&Message{ID: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid)), Flags: FlagReply,
		Name: "loadBefore", Args: pyval.Tuple(pyval.Bytes(oid), pyval.Bytes(tid))})
	var a loadBeforeArgs
	for i := range p {
		q := bytes.Clone(p)
		q[i] ^= 0x20
		if !parseLoadBefore(q, &a) {
			continue
		}
		want, err := decodePickle(q)
		if err != nil || !sameMessage(loadBeforeMessage(&a), want) {
			t.Errorf("byte %d changed: parsed %x, generic %+v, %v", i, a, want, err)
		}
	}
	for _, q := range [][]byte{p[:len(p)-1], append(bytes.Clone(p), '.'), nil} {
		if parseLoadBefore(q, &a) {
			t.Errorf("%x took the fast path", q)
		}
	}
}

// FuzzLoadBeforeFrame: for any data and tids, the session's reply frame
// is what the generic pickler writes.
func FuzzLoadBeforeFrame(f *testing.F) {
	f.Add([]byte("data"), uint64(1), uint64(2), uint64(3), uint64(4))
	f.Add(make([]byte, 300), uint64(0), uint64(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, oid, tid, start, end uint64) {
		o, d := binary.BigEndian.AppendUint64(nil, oid), binary.BigEndian.AppendUint64(nil, tid)
		got, ok := loadBeforeFrame(o, d, data, zodb.Tid(start), zodb.Tid(end))
		if want := genericLoadBeforeFrame(t, o, d, data, zodb.Tid(start), zodb.Tid(end)); !ok || !bytes.Equal(got, want) {
			t.Fatalf("fast %x (%v), generic %x", got, ok, want)
		}
	})
}

// TestServeLoadBeforeMatchesGeneric: a loadBefore call in ClientStorage's
// form, which serveLoadBefore answers, and the same call pickled another
// way (a memo put after the msgid), which the generic codec and method
// answer, get byte-identical replies: current and old revisions, data of
// both length forms, no revision before (None), an unknown oid
// (POSKeyError), and a session that has not registered (which the fast
// path leaves to the generic one). Each call takes the path it should.
func TestServeLoadBeforeMatchesGeneric(t *testing.T) {
	var fastLoads atomic.Int64
	_, addr, _ := newTestServer(t, Options{afterLoad: func(fast bool) {
		if fast {
			fastLoads.Add(1)
		}
	}})
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
	check := func(r *rawSession, what string, fastPath bool) {
		for _, tc := range cases {
			p := fast(tc.oid, tc.before)
			var a loadBeforeArgs
			if !parseLoadBefore(p, &a) {
				t.Fatalf("%s: the test's call is not in the fast form", tc.name)
			}
			n := fastLoads.Load()
			got := r.roundTrip(p)
			if took := fastLoads.Load() > n; took != fastPath {
				t.Errorf("%s, %s: fast path taken: %v, want %v", what, tc.name, took, fastPath)
			}
			n = fastLoads.Load()
			want := r.roundTrip(generic(p))
			if fastLoads.Load() != n {
				t.Errorf("%s, %s: the generic form took the fast path", what, tc.name)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: fast path replied\n%x\ngeneric path\n%x", what, tc.name, got, want)
			}
		}
	}
	r := dialRaw(t, addr)
	r.roundTrip(mustEncode(t, &Message{ID: pyval.Int(1), Flags: FlagReply, Name: "register",
		Args: pyval.Tuple(pyval.Str("1"), pyval.Bool(false))}))
	check(r, "registered", true)
	check(dialRaw(t, addr), "unregistered", false)
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
