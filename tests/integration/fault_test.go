package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/faultproxy"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// faultRig is an in-process primary with a history, a fault proxy in
// front of it, and a secondary file that scenarios replicate into, one
// secondary run at a time.
type faultRig struct {
	t            *testing.T
	p            *runningPrimary
	w            *workload
	px           *faultproxy.Proxy
	ppath, spath string
	snaps        *snapshots
	log          *testutil.SyncBuffer // every secondary run's log
	// opt is the secondaries' Protocol option; proto what they negotiate
	// with it. Scenarios that aim at zrs2 frames (whose layout this test
	// rebuilds) only aim when it is zrs2.x; with another protocol they hit
	// stream offsets blind and check the same safety properties.
	opt   secondary.Protocol
	proto string
}

// newFaultRig starts a rig whose secondaries use protocol opt.
func newFaultRig(t *testing.T, txns int, opt secondary.Protocol) *faultRig {
	dir := t.TempDir()
	r := &faultRig{t: t, ppath: filepath.Join(dir, "primary.fs"), spath: filepath.Join(dir, "secondary.fs"),
		snaps: newSnapshots(t), log: &testutil.SyncBuffer{}, opt: opt}
	r.p = startPrimary(t, r.ppath)
	r.w = newWorkload(r.p, 2)
	r.commit(txns)
	px, err := faultproxy.New(context.Background(), "127.0.0.1:0", r.p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	r.px = px
	r.proto = r.probeProto()
	t.Logf("secondaries speak %s with this primary", r.proto)
	return r
}

// zrs2 reports whether the stream is zrs2.x framing.
func (r *faultRig) zrs2() bool { return strings.HasPrefix(r.proto, "zrs2") }

// probeProto connects a throw-away secondary straight to the primary and
// returns the protocol it negotiated.
func (r *faultRig) probeProto() string {
	r.t.Helper()
	s := secondary.New(openFS(r.t, filepath.Join(r.t.TempDir(), "probe.fs")), r.p.addr,
		secondary.Options{Logger: testLogger().With("node", "probe"), Protocol: r.opt})
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	var proto string
	waitFor(r.t, "a probe secondary to connect", func() bool {
		for _, ss := range r.p.Status().Secondaries {
			proto = ss.Proto
		}
		return proto != ""
	})
	s.Close()
	<-done
	waitFor(r.t, "the probe to go", func() bool { return len(r.p.Status().Secondaries) == 0 })
	return proto
}

func (r *faultRig) commit(n int) {
	r.t.Helper()
	for end := r.w.n + n; r.w.n < end; {
		if err := r.w.step(); err != nil {
			r.t.Fatal(err)
		}
	}
}

// secRun is one run of an in-process secondary on the rig's file.
type secRun struct {
	*secondary.Secondary
	done chan error
}

// start runs a secondary through the proxy; backoff is its reconnect delay.
func (r *faultRig) start(backoff time.Duration) *secRun {
	r.t.Helper()
	log := slog.New(slog.NewTextHandler(r.log, nil))
	if testing.Verbose() {
		log = testLogger()
	}
	s := secondary.New(openFS(r.t, r.spath), r.px.Addr(), secondary.Options{
		Logger: log.With("node", "secondary"), MinBackoff: backoff, MaxBackoff: backoff, Protocol: r.opt})
	sr := &secRun{Secondary: s, done: make(chan error, 1)}
	go func() { sr.done <- s.Run(context.Background()) }()
	return sr
}

// stop closes the secondary, then checks its file against the primary
// (opens, Verify, prefix) and keeps a copy for fstest. It returns the
// secondary's last tid.
func (r *faultRig) stop(s *secRun, what string) zodb.Tid {
	r.t.Helper()
	if err := s.Close(); err != nil {
		r.t.Fatalf("%s: secondary close: %v", what, err)
	}
	// ErrClosed: closed before Run started (it had nothing to do).
	if err := <-s.done; err != nil && !errors.Is(err, zodb.ErrClosed) {
		r.t.Fatalf("%s: secondary run: %v", what, err)
	}
	checkSecondaryFile(r.t, what, r.spath, iterStorage(r.t, r.p))
	r.snaps.add(r.t, r.spath)
	return s.LastTransaction()
}

func (r *faultRig) caughtUp(s *secRun) func() bool {
	return func() bool { return s.LastTransaction() == r.p.LastTransaction() }
}

// finish heals the proxy, lets a secondary catch up, and requires the
// files to be byte-identical and to pass Python's fstest.
func (r *faultRig) finish() {
	r.t.Helper()
	r.px.Heal()
	s := r.start(5 * time.Millisecond)
	waitFor(r.t, "the secondary to catch up once healed", r.caughtUp(s), r.log)
	r.stop(s, "healed")
	r.p.stop(r.t)
	sameFile(r.t, r.ppath, r.spath)
	pythonFstest(r.t, r.snaps.paths...)
}

// eachProtocol runs f with a rig whose secondaries speak zrs2 (where the
// scenarios aim at frames and check exact positions) and one whose
// secondaries speak what they choose by default (zrs3).
func eachProtocol(t *testing.T, txns int, f func(t *testing.T, r *faultRig)) {
	for _, c := range []struct {
		name string
		opt  secondary.Protocol
	}{{"zrs2", secondary.ProtoZRS2}, {"default", secondary.ProtoAuto}} {
		t.Run(c.name, func(t *testing.T) {
			r := newFaultRig(t, txns, c.opt)
			if c.opt == secondary.ProtoZRS2 && !r.zrs2() {
				t.Fatalf("a secondary forced to zrs2 negotiated %s", r.proto)
			}
			f(t, r)
		})
	}
}

// Connections cut in the middle of frames at many offsets, both
// directions, and dropped at random moments of a live stream.
func TestFaultCuts(t *testing.T) {
	eachProtocol(t, 400, testFaultCuts)
}

func testFaultCuts(t *testing.T, r *faultRig) {
	// Cuts at every kind of place of the frames of the next transactions:
	// inside a length prefix, right after it, inside a payload, right at a
	// frame's end (for a C frame: between transactions).
	last := zodb.Tid(0)
	const backoff = 300 * time.Millisecond // see TestFaultFlippedBits
	for i := range 48 {
		if !r.zrs2() {
			r.blindCut(i)
			continue
		}
		frames := r.streamLayout(last, 3)
		k := i % 3
		var inTxn []streamFrame
		for _, f := range frames {
			if f.txn == k {
				inTxn = append(inTxn, f)
			}
		}
		f := inTxn[(i*5)%len(inTxn)]
		var cut int64
		switch i % 6 {
		case 0:
			cut = f.off - 4
		case 1:
			cut = f.off - 2
		case 2:
			cut = f.off
		case 3:
			cut = f.off + 1
		case 4:
			cut = f.off + int64(f.n/2)
		case 5:
			cut = f.off + int64(f.n)
		}
		cut = min(cut, f.off+int64(f.n))
		want := f.tid // the cut falls after its transaction's C frame
		if f.kind != "C" || cut < f.off+int64(f.n) {
			want = last
			for _, g := range frames {
				if g.txn == k-1 {
					want = g.tid
				}
			}
		}
		what := fmt.Sprintf("cut %d: primary→secondary after %d bytes, byte %d of a %d-byte %s frame of transaction %s",
			i, cut, cut-f.off, f.n, f.kind, f.tid)
		r.px.CutAfter(faultproxy.ServerToClient, cut)
		accepted, cuts := r.px.Stats().Accepted, r.px.Stats().Cuts
		s := r.start(backoff)
		waitFor(t, what, func() bool { return s.Status().LastError != "" && r.px.Stats().Cuts > cuts }, r.log)
		got, st := s.LastTransaction(), r.px.Stats()
		r.px.CutAfter(faultproxy.ServerToClient, -1)
		last = r.stop(s, what)
		if st.Accepted == accepted+1 && got != want {
			t.Fatalf("%s: the secondary is at %s after the cut connection, want %s", what, got, want)
		}
		if i%8 == 7 {
			r.commit(2) // new transactions, appended while the secondary is away
		}
	}
	// The handshake is 22 bytes: every cut inside it.
	for off := int64(0); off < 22; off += 3 {
		what := fmt.Sprintf("cut secondary→primary after %d bytes", off)
		r.px.CutAfter(faultproxy.ClientToServer, off)
		before := r.px.Stats().Cuts
		last := r.lastOnFile()
		s := r.start(time.Millisecond)
		waitFor(t, what, func() bool { return r.px.Stats().Cuts >= before+2 }, r.log)
		if got := r.stop(s, what); got != last {
			t.Fatalf("%s: the secondary moved from %s to %s without a handshake", what, last, got)
		}
		r.px.CutAfter(faultproxy.ClientToServer, -1)
	}
	// Drops at random moments while the primary commits.
	s := r.start(time.Millisecond)
	for range 15 {
		r.commit(5)
		time.Sleep(time.Duration(r.w.rng.IntN(20)) * time.Millisecond)
		r.px.DropAll()
	}
	r.stop(s, "dropped connections")
	r.finish()
}

// blindCut cuts the stream at an offset that does not depend on its
// layout, for protocols whose layout the test does not rebuild.
func (r *faultRig) blindCut(i int) {
	r.t.Helper()
	off := int64(1 + (i*i*997+i*31)%30000)
	what := fmt.Sprintf("cut %d: primary→secondary after %d bytes", i, off)
	r.commit(2)
	r.px.CutAfter(faultproxy.ServerToClient, off)
	cuts := r.px.Stats().Cuts
	s := r.start(time.Millisecond)
	caught := r.caughtUp(s)
	waitFor(r.t, what, func() bool { return r.px.Stats().Cuts >= cuts+2 || caught() }, r.log)
	r.px.CutAfter(faultproxy.ServerToClient, -1)
	r.stop(s, what)
}

func (r *faultRig) lastOnFile() zodb.Tid {
	st := openFS(r.t, r.spath)
	defer st.Close()
	return st.LastTransaction()
}

// Delays and stalls in either direction slow replication down and never
// damage it; a secondary closed during a stall leaves a sound prefix.
// Each fault is seen to hold the stream back: a delay makes catching up
// take at least that long (the handshake crosses one direction, the
// stream the other), and nothing arrives while the primary's direction is
// stalled.
func TestFaultDelaysAndStalls(t *testing.T) {
	r := newFaultRig(t, 100, secondary.ProtoAuto)
	const delay = 100 * time.Millisecond
	for _, dir := range []faultproxy.Dir{faultproxy.ServerToClient, faultproxy.ClientToServer} {
		r.px.Delay(dir, delay)
		r.commit(30)
		start := time.Now()
		s := r.start(time.Millisecond)
		waitFor(t, "catching up through a delay "+dir.String(), r.caughtUp(s), r.log)
		if took := time.Since(start); took < delay {
			t.Errorf("caught up through a %v delay %s in %v", delay, dir, took)
		}
		r.stop(s, "delay "+dir.String())
		r.px.Heal()
	}

	// stalledAt checks that a secondary running behind a stall is still
	// where its file was.
	stalledAt := func(s *secRun, at zodb.Tid, what string) {
		t.Helper()
		if got := s.LastTransaction(); got != at || at == r.p.LastTransaction() {
			t.Fatalf("%s: the secondary is at %s behind a stalled stream, started at %s, primary at %s", what, got, at, r.p.LastTransaction())
		}
	}

	// Stalled, then closed while stalled.
	r.commit(50)
	r.px.Stall(faultproxy.ServerToClient, true)
	at := r.lastOnFile()
	s := r.start(time.Millisecond)
	r.commit(20)
	time.Sleep(100 * time.Millisecond)
	stalledAt(s, at, "closed during a stall")
	r.stop(s, "closed during a stall")

	// Stalled, then resumed: everything arrives, in order.
	at = r.lastOnFile()
	s = r.start(time.Millisecond)
	r.commit(20)
	time.Sleep(100 * time.Millisecond)
	stalledAt(s, at, "resumed stall")
	r.px.Stall(faultproxy.ServerToClient, false)
	waitFor(t, "catching up after a stall", r.caughtUp(s), r.log)
	r.stop(s, "resumed stall")

	// Stalled both ways, then cut.
	r.commit(20)
	r.px.Stall(faultproxy.ServerToClient, true)
	r.px.Stall(faultproxy.ClientToServer, true)
	at = r.lastOnFile()
	s = r.start(time.Millisecond)
	r.commit(5)
	time.Sleep(50 * time.Millisecond)
	stalledAt(s, at, "stalled then dropped")
	r.px.DropAll()
	r.stop(s, "stalled then dropped")
	r.finish()
}

// streamFrame is one frame of the zrs2 stream a primary sends.
type streamFrame struct {
	txn  int      // index of its transaction in the stream
	kind string   // T, S, DATA, C
	off  int64    // stream offset of the payload's first byte
	n    int      // payload length
	tid  zodb.Tid // its transaction's tid
}

// streamLayout rebuilds the bytes the primary sends to a secondary whose
// last transaction is start, for the next txns transactions, and lists
// their frames. The primary is idle, so this is exactly its stream.
func (r *faultRig) streamLayout(start zodb.Tid, txns int) []streamFrame {
	r.t.Helper()
	ctx := context.Background()
	it, err := r.p.Iterate(ctx, start+1, zodb.MaxTid)
	if err != nil {
		r.t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	sw := zrsproto.NewStreamWriter(&buf, start)
	var tids []zodb.Tid
	for range txns {
		info, err := it.Next(ctx)
		if err != nil {
			break
		}
		if err := sw.WriteTxn(info); err != nil {
			r.t.Fatal(err)
		}
		tids = append(tids, info.Tid)
	}
	b := buf.Bytes()
	var frames []streamFrame
	txn, next := 0, "T"
	for pos := 0; pos < len(b); {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		f := streamFrame{txn: txn, off: int64(pos + 4), n: n, tid: tids[txn]}
		payload := b[pos+4 : pos+4+n]
		pos += 4 + n
		if next == "DATA" {
			f.kind, next = "DATA", "SC"
			frames = append(frames, f)
			continue
		}
		m, err := zrsproto.DecodeControl(payload)
		if err != nil {
			r.t.Fatalf("our own stream: %v", err)
		}
		switch m.(type) {
		case zrsproto.TxnBegin:
			f.kind, next = "T", "SC"
		case zrsproto.Store:
			f.kind, next = "S", "DATA"
		case zrsproto.Commit:
			f.kind, next = "C", "T"
			txn++
		default:
			r.t.Fatalf("our own stream: unexpected %T", m)
		}
		frames = append(frames, f)
	}
	return frames
}

// Flipped bits at many positions of data frames (and some of control
// frames): each is caught before the transaction carrying it is applied,
// is reported as a checksum (or, in a control message, protocol) failure,
// the transactions before it are applied, and the file stays a prefix of
// the primary's.
func TestFaultFlippedBits(t *testing.T) {
	eachProtocol(t, 500, testFaultFlippedBits)
}

func testFaultFlippedBits(t *testing.T, r *faultRig) {
	// A reconnect delay long enough to look at the secondary between its
	// first (corrupted) connection and the next: only used to decide
	// whether the exact-position check below applies.
	const backoff = 300 * time.Millisecond
	last := zodb.Tid(0)
	const scenarios = 72
	checksumErrors := 0
	for i := range scenarios {
		if !r.zrs2() {
			if r.blindFlip(i) {
				checksumErrors++
			}
			continue
		}
		frames := r.streamLayout(last, 4)
		k := i % 4 // the transaction to corrupt
		wantKinds := "DATA"
		if i%6 == 5 {
			wantKinds = "T S C"
		}
		var cands []streamFrame
		for _, f := range frames {
			if f.txn == k && f.n > 0 && slices.Contains(strings.Fields(wantKinds), f.kind) {
				cands = append(cands, f)
			}
		}
		if len(cands) == 0 {
			t.Logf("scenario %d: no %s frame in transaction %d of %d", i, wantKinds, k, len(frames))
			continue // e.g. a transaction of deletions only
		}
		f := cands[(i*7)%len(cands)]
		off := f.off + int64((i*7919+i*i*31)%f.n)
		bit := uint(i*3) % 8
		what := fmt.Sprintf("scenario %d: bit %d of byte %d of a %d-byte %s frame of transaction %s", i, bit, off-f.off, f.n, f.kind, f.tid)
		prevTid := last
		if k > 0 {
			prevTid = frames[0].tid
			for _, g := range frames {
				if g.txn == k-1 {
					prevTid = g.tid
				}
			}
		}

		if err := r.px.FlipBit(faultproxy.ServerToClient, off, bit); err != nil {
			t.Fatal(err)
		}
		accepted, flipped := r.px.Stats().Accepted, r.px.Stats().Flipped
		s := r.start(backoff)
		caught := r.caughtUp(s)
		waitFor(t, what+": a failure", func() bool { return s.Status().LastError != "" || caught() }, r.log)
		got, st := s.LastTransaction(), r.px.Stats()
		lastErr := s.Status().LastError
		r.px.Heal()
		if lastErr == "" {
			r.stop(s, what) // names the transaction that differs, if one was applied
			t.Fatalf("%s: the secondary caught up through a flipped bit without noticing", what)
		}
		last = r.stop(s, what)

		if st.Flipped <= flipped {
			t.Fatalf("%s: the proxy flipped nothing", what)
		}
		if st.Accepted == accepted+1 && got != prevTid {
			// One connection so far: it applied everything before the
			// corrupted transaction and nothing from it on.
			t.Fatalf("%s: the corrupted connection left the secondary at %s, want %s (the transaction before)", what, got, prevTid)
		}
		low := strings.ToLower(lastErr)
		switch {
		case strings.Contains(low, "checksum"):
			checksumErrors++
		case f.kind == "DATA":
			t.Fatalf("%s: error %q does not report a checksum failure", what, lastErr)
		case !strings.Contains(low, "protocol"):
			t.Fatalf("%s: error %q reports neither a checksum nor a protocol failure", what, lastErr)
		}
	}
	if !strings.Contains(strings.ToLower(r.log.String()), "checksum") && !testing.Verbose() {
		t.Error("no checksum failure was logged")
	}
	t.Logf("%d checksum failures in %d scenarios", checksumErrors, scenarios)
	r.finish()
}

// blindFlip flips a bit at an offset that does not depend on the stream's
// layout: the secondary must fail, and its file stay a prefix. It reports
// whether the failure named a checksum.
func (r *faultRig) blindFlip(i int) bool {
	r.t.Helper()
	off, bit := int64((i*i*7919+i*131)%20000), uint(i*3)%8
	what := fmt.Sprintf("scenario %d: bit %d of stream byte %d", i, bit, off)
	r.commit(3)
	if err := r.px.FlipBit(faultproxy.ServerToClient, off, bit); err != nil {
		r.t.Fatal(err)
	}
	flipped := r.px.Stats().Flipped
	s := r.start(300 * time.Millisecond)
	caught := r.caughtUp(s)
	waitFor(r.t, what+": a failure", func() bool { return s.Status().LastError != "" || caught() }, r.log)
	lastErr, st := s.Status().LastError, r.px.Stats()
	r.px.Heal()
	r.stop(s, what)
	if st.Flipped > flipped && lastErr == "" {
		r.t.Fatalf("%s: a bit was flipped and the secondary caught up without noticing", what)
	}
	return strings.Contains(strings.ToLower(lastErr), "checksum")
}
