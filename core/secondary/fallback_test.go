package secondary_test

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zrsproto"
)

// An old primary brought back as a secondary (default protocol, auto) of
// the promoted zrs primary, with transactions the new primary lacks, while
// that primary closes its first two handshakes unanswered (stopping,
// restarting): the secondary falls back to zrs2.0, but the primary, whose
// file was never packed, refuses the start tid it lacks; the secondary
// then asks again with zrs3 and gets the reason. Nothing is applied.
func TestAutoDivergedSecondaryRefusedAfterClosedHandshakes(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	pst := openFS(t, ppath)
	newWorkload(t, pst).run(20)
	pst.Close()
	copyFile(t, ppath, spath)
	sst := openFS(t, spath)
	newWorkload(t, sst).run(3) // the old primary's commits after the failover point
	own := sst.LastTransaction()
	sst.Close()
	pst = openFS(t, ppath)
	newWorkload(t, pst).run(5) // the new primary's commits, later tids
	pst.Close()
	p := startPrimary(t, ppath, "127.0.0.1:0")

	var mu sync.Mutex
	var protos []string // the protocol each connection opened with
	addr := serveEach(t, func(n int, c net.Conn) {
		proto, err := zrsproto.ReadFrame(c, 8)
		if err != nil {
			return
		}
		mu.Lock()
		protos = append(protos, string(proto))
		mu.Unlock()
		if n < 2 {
			return // closed unanswered
		}
		up, err := net.Dial("tcp", p.addr)
		if err != nil {
			return
		}
		defer up.Close()
		zrsproto.WriteFrame(up, proto)
		relay(c, up)
	})
	s := startSecondary(t, spath, addr, secondary.Options{})
	waitFor(t, "the zrs3 refusal", func() bool {
		return s.LastTransaction() != own || strings.Contains(s.Status().LastError, "history diverged")
	})
	if last := s.LastTransaction(); last != own {
		t.Fatalf("the diverged secondary (own last %s) applied the primary's transactions up to %s", own, last)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(protos, zrsproto.Proto20) {
		t.Errorf("protocols %v: the secondary never fell back to zrs2.0, so the primary's zrs2 check was not exercised", protos)
	}
}

// A secondary (auto) whose primary answered zrs3 never falls back to
// zrs2.0 for it, however many handshakes that primary then closes
// unanswered (a crash loop): only zrs3 can refuse a diverged history.
func TestAutoNoFallbackAfterNative(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(10)

	const closed = 4 // connections 1..closed are closed unanswered
	release := make(chan struct{})
	var mu sync.Mutex
	var protos []string
	addr := serveEach(t, func(n int, c net.Conn) {
		if n >= 1 && n <= closed {
			proto, _ := zrsproto.ReadFrame(c, 8)
			mu.Lock()
			protos = append(protos, string(proto))
			mu.Unlock()
			return
		}
		up, err := net.Dial("tcp", p.addr)
		if err != nil {
			return
		}
		defer up.Close()
		if n == 0 {
			go func() { <-release; c.Close(); up.Close() }()
		}
		relay(c, up)
	})
	s := startSecondary(t, spath, addr, secondary.Options{})
	waitCaughtUp(t, p, s)
	close(release) // the primary "goes down"
	w.run(5)
	waitCaughtUp(t, p, s)
	mu.Lock()
	got := slices.Clone(protos)
	mu.Unlock()
	if len(got) != closed || slices.ContainsFunc(got, func(p string) bool { return p != zrsproto.Proto3 }) {
		t.Errorf("protocols of the closed connections %v, want %d times %s", got, closed, zrsproto.Proto3)
	}
	if ns := s.NativeStatus(); ns.Proto != zrsproto.Proto3 {
		t.Errorf("secondary speaks %q, want %q", ns.Proto, zrsproto.Proto3)
	}
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}
