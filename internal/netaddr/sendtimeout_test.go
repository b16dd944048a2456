package netaddr

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/testutil"
)

// TestSendTimeoutDropsVanishedPeer takes a peer's host away without a
// word, as a power cut would, and checks that a connection with a send
// timeout fails its writes soon after, and one without does not.
//
// The scenario needs a loopback interface it can take down, so it runs in
// a network namespace of its own: the test starts itself again under
// `ip netns exec` (which needs root, as the whole test suite does).
func TestSendTimeoutDropsVanishedPeer(t *testing.T) {
	if os.Getenv("ZRS_NETNS_CHILD") != "" {
		vanishedPeer(t)
		return
	}
	ns := fmt.Sprintf("zrs-netaddr-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s (this test needs root and iproute2): %v\n%s", ns, err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestSendTimeoutDropsVanishedPeer$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "ZRS_NETNS_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("the scenario failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatal("the scenario did not run")
	}
}

func vanishedPeer(t *testing.T) {
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("link", "set", "lo", "up")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	bounded, unbounded := accept(), accept()
	if err := SetSendTimeout(&wrapped{bounded}, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := testutil.UserTimeout(t, bounded); got != 1000 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms, want 1000", got)
	}
	ip("link", "set", "lo", "down")

	write := func(c net.Conn) <-chan error {
		ch := make(chan error, 1)
		go func() {
			buf := make([]byte, 16<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					ch <- err
					return
				}
			}
		}()
		return ch
	}
	boundedErr, unboundedErr := write(bounded), write(unbounded)
	select {
	case err := <-boundedErr:
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("write with a send timeout failed with %v, want ETIMEDOUT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writes to a vanished peer still pending 30 s after a 1 s send timeout")
	}
	select {
	case err := <-unboundedErr:
		t.Fatalf("the connection without a send timeout failed too (%v): the scenario does not show the option's effect", err)
	default:
	}
}

// wrapped stands for the wrappers SetSendTimeout sees through.
type wrapped struct{ net.Conn }

func (w *wrapped) NetConn() net.Conn { return w.Conn }

func TestSendTimeoutLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := SetSendTimeout(a, time.Second); err != nil {
		t.Fatalf("SetSendTimeout on a pipe: %v, want nil (nothing to set)", err)
	}
	// A unix socket has a file descriptor, but no TCP option to set.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := SetSendTimeout(c, time.Second); err != nil {
		t.Fatalf("SetSendTimeout on a unix socket: %v, want nil (nothing to set)", err)
	}
}

// The price SetSendTimeout documents: a live peer that reads nothing for
// longer than the timeout (its window stays shut) is dropped too, on the
// kernels this runs on (Linux 5.11 and later).
func TestSendTimeoutDropsPeerThatStopsReading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close() // alive, never reads
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := SetSendTimeout(s, time.Second); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := s.Write(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("write to a peer that stopped reading failed with %v, want ETIMEDOUT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a peer that reads nothing is still connected 30 s after a 1 s send timeout: SetSendTimeout's doc is wrong for this kernel")
	}
}
