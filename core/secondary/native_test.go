package secondary_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/faultproxy"
)

// By default a secondary speaks zrs3 to a zrs primary: compressed, and
// acknowledging what it applied, which the primary's lag reflects.
func TestNativeReplicatesAndAcks(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimaryWith(t, ppath, "127.0.0.1:0", primary.Options{CompressLocal: true})
	w := newWorkload(t, p)
	w.run(50)
	s := startSecondary(t, spath, p.addr, secondary.Options{})
	w.run(50)
	waitCaughtUp(t, p, s)
	last := p.LastTransaction()
	waitFor(t, "the acknowledgement of the last commit", func() bool {
		ss := p.Status().Secondaries
		return len(ss) == 1 && ss[0].Acked == last
	})
	ss := p.Status().Secondaries[0]
	if ss.Proto != zrsproto.Proto3 || ss.Compression != zrsproto.CompressionZstd || !ss.Acks || ss.Lag != (primary.Lag{}) {
		t.Errorf("primary status %+v", ss)
	}
	if ns := s.NativeStatus(); ns.Proto != zrsproto.Proto3 {
		t.Errorf("secondary native status %+v", ns)
	}
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// zcLikePrimary listens like a zc.zrs primary in front of a zrs primary:
// a first frame other than zrs2.0/zrs2.1 closes the connection without
// a reply; otherwise the connection is relayed to target.
func zcLikePrimary(t *testing.T, target string) string {
	return serveEach(t, func(_ int, c net.Conn) {
		proto, err := zrsproto.ReadFrame(c, 8)
		if err != nil || (string(proto) != zrsproto.Proto20 && string(proto) != zrsproto.Proto21) {
			return // "Invalid protocol": close
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		zrsproto.WriteFrame(up, proto)
		relay(c, up)
	})
}

// Against a primary that closes on "zrs3", as zc.zrs does, the secondary
// falls back to zrs2.0 and replicates.
func TestNativeFallsBackToZRS2(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(30)
	s := startSecondary(t, spath, zcLikePrimary(t, p.addr), secondary.Options{})
	waitCaughtUp(t, p, s)
	if ss := p.Status().Secondaries; len(ss) != 1 || ss[0].Proto != zrsproto.Proto20 {
		t.Errorf("primary status %+v, want one zrs2.0 secondary", ss)
	}
	if ns := s.NativeStatus(); ns.Proto != zrsproto.Proto20 {
		t.Errorf("secondary native status %+v", ns)
	}
	// ProtoNative does not fall back.
	s2 := startSecondary(t, filepath.Join(dir, "s2.fs"), zcLikePrimary(t, p.addr), secondary.Options{Protocol: secondary.ProtoNative})
	waitFor(t, "an error", func() bool { return s2.Status().LastError != "" })
	time.Sleep(50 * time.Millisecond)
	if s2.LastTransaction() != 0 || !strings.Contains(s2.Status().LastError, "zrs3") {
		t.Errorf("native-only secondary: last %s, error %q", s2.LastTransaction(), s2.Status().LastError)
	}
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// A secondary whose file is another database is refused by the primary,
// and applies nothing.
func TestNativeRefusesOtherDatabase(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	sst := openFS(t, spath)
	newWorkload(t, sst).run(5) // earlier tids than the primary's
	own := sst.LastTransaction()
	sst.Close()
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(10)
	s := startSecondary(t, spath, p.addr, secondary.Options{})
	waitFor(t, "a refusal", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "different database") {
		t.Errorf("error %q does not say 'different database'", e)
	}
	if s.LastTransaction() != own {
		t.Fatalf("secondary applied transactions of another database")
	}
}

// An old primary that committed transactions the new primary lacks (its
// history diverged after a failover) is refused, with what to do; so is
// one that is simply ahead.
func TestNativeRefusesDivergedHistory(t *testing.T) {
	for _, ahead := range []bool{false, true} {
		dir := t.TempDir()
		ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
		pst := openFS(t, ppath)
		newWorkload(t, pst).run(20)
		pst.Close()
		copyFile(t, ppath, spath)
		sst := openFS(t, spath)
		newWorkload(t, sst).run(3) // the old primary's extra commits
		own := sst.LastTransaction()
		sst.Close()
		pst = openFS(t, ppath)
		if !ahead {
			newWorkload(t, pst).run(5) // the new primary's commits, later tids
		}
		pst.Close()
		p := startPrimary(t, ppath, "127.0.0.1:0")
		s := startSecondary(t, spath, p.addr, secondary.Options{})
		waitFor(t, "a refusal", func() bool { return s.Status().LastError != "" })
		e := s.Status().LastError
		if !strings.Contains(e, "history diverged") || !strings.Contains(e, "restore it from this primary or from a backup") {
			t.Errorf("ahead=%v: error %q", ahead, e)
		}
		if s.LastTransaction() != own {
			t.Fatalf("ahead=%v: diverged secondary applied transactions", ahead)
		}
		s.close()
		p.close()
	}
}

// A secondary whose last transaction has a tid the primary also has, but
// other content (both sides committed at the same forced tid after a
// failover), is refused: the zrs3 handshake compares the transaction's
// digest, not only its tid.
func TestNativeRefusesSameTidOtherContent(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	pst := openFS(t, ppath)
	newWorkload(t, pst).run(20)
	pst.Close()
	copyFile(t, ppath, spath)
	commitAt := func(path string, data string) zodb.Tid {
		st := openFS(t, path)
		defer st.Close()
		ctx := context.Background()
		tid := st.LastTransaction() + 1000
		txn, err := st.Begin(ctx, zodb.TxnMeta{Description: []byte("same tid")}, zodb.BeginOptions{Tid: tid})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Store(zodb.Oid(1<<30), 0, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		return tid
	}
	pt, st := commitAt(ppath, "the new primary's"), commitAt(spath, "the old primary's")
	if pt != st {
		t.Fatalf("set-up: tids %s and %s", pt, st)
	}
	p := startPrimary(t, ppath, "127.0.0.1:0")
	s := startSecondary(t, spath, p.addr, secondary.Options{Protocol: secondary.ProtoNative})
	waitFor(t, "a refusal", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "history diverged") || !strings.Contains(e, "differs from this primary's") {
		t.Fatalf("error %q, want a refusal: the secondary's transaction %s differs from the primary's", e, st)
	}
}

// A secondary refuses a primary announcing another database (the primary
// here is a fake that welcomes anyone).
func TestNativeSecondaryRefusesOtherPrimary(t *testing.T) {
	dir := t.TempDir()
	spath := filepath.Join(dir, "secondary.fs")
	sst := openFS(t, spath)
	newWorkload(t, sst).run(3)
	own := sst.LastTransaction()
	sst.Close()
	addr := fakeWelcome(t, func(*zrsproto.Hello) *zrsproto.Welcome {
		return &zrsproto.Welcome{Version: 1, Last: zodb.MaxTid - 1,
			Database: zrsproto.Identity{First: 1, Sum: [16]byte{7}}, HeartbeatMillis: 1000}
	})
	s := startSecondary(t, spath, addr, secondary.Options{})
	waitFor(t, "a refusal", func() bool { return strings.Contains(s.Status().LastError, "different database") })
	if s.LastTransaction() != own {
		t.Fatal("applied something")
	}
}

// A secondary with compression off does not accept a welcome that chooses
// zstd anyway (a primary must choose among what the hello offered).
func TestNativeSecondaryRefusesUnofferedCompression(t *testing.T) {
	addr := fakeWelcome(t, func(h *zrsproto.Hello) *zrsproto.Welcome {
		if len(h.Compression) > 0 {
			return nil
		}
		return &zrsproto.Welcome{Version: 1, Last: 1, Database: zrsproto.Identity{First: 1, Sum: [16]byte{7}},
			HeartbeatMillis: 1000, Compression: zrsproto.CompressionZstd}
	})
	s := startSecondary(t, filepath.Join(t.TempDir(), "secondary.fs"), addr,
		secondary.Options{Protocol: secondary.ProtoNative, NoCompression: true})
	waitFor(t, "a refusal", func() bool { return strings.Contains(s.Status().LastError, "did not offer") })
}

// Heartbeats keep an idle native connection open; a stalled stream is
// noticed after the idle timeout and the secondary reconnects and catches
// up.
func TestNativeHeartbeatsAndIdleTimeout(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := primary.New(openFS(t, ppath), primary.Options{HeartbeatInterval: 50 * time.Millisecond})
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background())
	defer p.Close()
	w := newWorkload(t, p)
	w.run(10)
	px := startProxy(t, a.String())
	// The idle timeout is 10 heartbeats: surviving on heartbeats does not
	// hang on the scheduler's mood on a loaded machine.
	const idle = 500 * time.Millisecond
	s := startSecondary(t, spath, px.Addr(), secondary.Options{IdleTimeout: idle})
	waitCaughtUp(t, p, s)
	since := s.Status().ConnectedSince
	time.Sleep(4 * idle) // idle: heartbeats only
	if st := s.Status(); !st.Connected || !st.ConnectedSince.Equal(since) || st.LastError != "" {
		t.Fatalf("idle connection did not survive on heartbeats: %+v", st)
	}
	if ns := s.NativeStatus(); ns.PrimaryLast != p.LastTransaction() || time.Since(ns.HeardAt) > idle {
		t.Errorf("heartbeat state %+v", ns)
	}
	px.Stall(faultproxy.ServerToClient, true)
	waitFor(t, "the idle timeout", func() bool { return strings.Contains(s.Status().LastError, "heartbeat") })
	px.Stall(faultproxy.ServerToClient, false)
	px.Heal()
	w.run(10)
	waitCaughtUp(t, p, s)
}

// Random bit flips in a zrs3 stream (most caught by its framing or its
// decoders, the rest by its checksum; TestCorruptionIsNotApplied/zrs3
// flips a bit that only the checksum can catch) never reach the file.
func TestNativeCorruptionIsNotApplied(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(60)
	px := startProxy(t, p.addr)
	if err := px.FlipRandom(faultproxy.ServerToClient, 0.0005, 42); err != nil {
		t.Fatal(err)
	}
	s := startSecondary(t, spath, px.Addr(), secondary.Options{})
	waitFor(t, "a detected corruption", func() bool { return s.Status().LastError != "" })
	px.Heal()
	waitCaughtUp(t, p, s)
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A zrs primary that closes one handshake (it was stopping, or restarting)
// does not send the secondary to zrs2.0 for NativeRetry: it stays on zrs3.
func TestNativeSurvivesOneClosedHandshake(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(10)
	addr := firstConnProxy(t, p.addr, func(c, _ net.Conn) {
		zrsproto.ReadFrame(c, 8) // read the handshake, close without a word
	})
	s := startSecondary(t, spath, addr, secondary.Options{})
	waitCaughtUp(t, p, s)
	if ns := s.NativeStatus(); ns.Proto != zrsproto.Proto3 {
		t.Errorf("after one closed handshake the secondary speaks %q, want %q", ns.Proto, zrsproto.Proto3)
	}
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// A secondary on the same host (loopback, unix socket) gets the stream
// uncompressed unless the primary is told otherwise: compression there
// only costs CPU.
func TestNativeLocalSecondaryIsNotCompressed(t *testing.T) {
	dir := t.TempDir()
	for i, listen := range []string{"127.0.0.1:0", filepath.Join(dir, "repl.sock")} {
		ppath := filepath.Join(dir, fmt.Sprintf("p%d.fs", i))
		p := startPrimary(t, ppath, listen)
		newWorkload(t, p).run(5)
		s := startSecondary(t, filepath.Join(dir, fmt.Sprintf("s%d.fs", i)), p.addr, secondary.Options{})
		waitCaughtUp(t, p, s)
		if ss := p.Status().Secondaries; len(ss) != 1 || ss[0].Proto != zrsproto.Proto3 || ss[0].Compression != "" {
			t.Errorf("%s: primary status %+v, want zrs3 without compression", listen, ss)
		}
		s.close()
		p.close()
	}
}

// A corrupted length prefix in an uncompressed zrs3 stream makes the
// reader wait for a frame that never ends while heartbeats trickle in;
// the secondary must still notice (no whole message within its idle
// time) and reconnect, rather than hang.
func TestNativeCorruptLengthIsNotAHang(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimaryWith(t, ppath, "127.0.0.1:0", primary.Options{HeartbeatInterval: 200 * time.Millisecond})
	newWorkload(t, p).run(20)
	addr := firstConnProxy(t, p.addr, func(c, up net.Conn) {
		go io.Copy(up, c)
		// Forward frame by frame; the 8th frame (past the welcome,
		// inside the first transactions) claims 64 KiB more.
		for n := 0; ; n++ {
			p, err := zrsproto.ReadFrame(up, 1<<30)
			if err != nil {
				return
			}
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
			if n == 8 {
				binary.BigEndian.PutUint32(hdr[:], uint32(len(p))+1<<16)
			}
			if _, err := c.Write(append(hdr[:], p...)); err != nil {
				return
			}
		}
	})
	s := startSecondary(t, spath, addr, secondary.Options{})
	waitFor(t, "the stuck frame to be noticed", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "stopped making progress") {
		t.Errorf("error %q does not say the message stopped making progress", e)
	}
	waitCaughtUp(t, p, s)
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

// firstConnProxy relays TCP connections to target and returns its
// address; the first connection is handed to first instead, with its own
// connection to target, and closed when first returns.
func firstConnProxy(t *testing.T, target string, first func(c, up net.Conn)) string {
	return serveEach(t, func(n int, c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		if n == 0 {
			first(c, up)
			return
		}
		relay(c, up)
	})
}

// fakeWelcome is a zrs3 "primary" that answers each hello with what
// welcome returns (nothing when nil), then closes the connection.
func fakeWelcome(t *testing.T, welcome func(*zrsproto.Hello) *zrsproto.Welcome) string {
	return serveEach(t, func(_ int, c net.Conn) {
		if _, _, err := zrsproto.ReadAnyHandshake(c); err == nil {
			if h, err := zrsproto.ReadHello(c); err == nil {
				if w := welcome(h); w != nil {
					zrsproto.WriteWelcome(c, w)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	})
}

// A secondary given the wrong address says what answered there — a ZEO
// server's greeting, an HTTP response — and never takes it for a zc.zrs
// primary (falling back to zrs2.0) however its handshakes end.
func TestWrongPortIsNamed(t *testing.T) {
	for _, c := range []struct {
		name, want string
		serve      func(c net.Conn)
	}{
		{"zeo", `is a ZEO server (it greeted with "Z5"), not a replication port`, func(c net.Conn) {
			zrsproto.WriteFrame(c, []byte("Z5"))
			zrsproto.ReadFrame(c, 64) // the client's choice: here, the secondary's "zrs3"
		}},
		{"http", `is an HTTP server (it answered "HTTP/1.1 400 Bad Request"): an admin or metrics endpoint?, not a replication port`, nil},
		{"tls", `is a TLS server (ZEO with a certificate?), not a replication port`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var addr string
			if c.serve != nil {
				addr = serveEach(t, func(_ int, conn net.Conn) { c.serve(conn) })
			} else { // a real HTTP server, as an admin endpoint is; or one over TLS
				hs := httptest.NewUnstartedServer(http.NotFoundHandler())
				hs.Config.ReadHeaderTimeout = 100 * time.Millisecond
				hs.Config.ErrorLog = log.New(io.Discard, "", 0)
				if c.name == "tls" {
					hs.StartTLS()
				} else {
					hs.Start()
				}
				t.Cleanup(hs.Close)
				addr = hs.Listener.Addr().String()
			}
			s := startSecondary(t, filepath.Join(t.TempDir(), "s.fs"), addr,
				secondary.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
			waitFor(t, "the error naming what answered", func() bool {
				return strings.Contains(s.Status().LastError, addr+" "+c.want)
			})
			time.Sleep(100 * time.Millisecond) // dozens of attempts
			if p := s.NativeStatus().Proto; p != zrsproto.Proto3 && p != "" {
				t.Fatalf("fell back to %s against a non-primary", p)
			}
			// (A ZEO server's close sometimes swallows its greeting: that
			// attempt reads as closed unanswered, the next names it.)
			waitFor(t, "the error naming what answered, still", func() bool {
				return strings.Contains(s.Status().LastError, addr+" "+c.want)
			})
		})
	}
}
