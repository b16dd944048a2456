package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/testutil"
)

// session is faultproxy's run function driven in-process through pipes.
type session struct {
	t      *testing.T
	in     *io.PipeWriter
	out    *bufio.Scanner
	done   chan error
	addr   string
	stderr *strings.Builder
}

func start(t *testing.T, target string) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1), stderr: new(strings.Builder)}
	go func() {
		s.done <- run(context.Background(), []string{"--listen", "127.0.0.1:0", "--target", target}, inR, outW, s.stderr)
		outW.Close()
	}()
	r := s.reply()
	if !r.OK || r.Listen == "" {
		t.Fatalf("first line %+v", r)
	}
	s.addr = r.Listen
	t.Cleanup(func() {
		inW.Close()
		go io.Copy(io.Discard, outR)
		if err := <-s.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

func (s *session) reply() reply {
	s.t.Helper()
	if !s.out.Scan() {
		s.t.Fatalf("no reply: %v", s.out.Err())
	}
	var r reply
	if err := json.Unmarshal(s.out.Bytes(), &r); err != nil {
		s.t.Fatalf("reply %q: %v", s.out.Text(), err)
	}
	return r
}

// do sends a command line and returns its reply, failing on an error reply.
func (s *session) do(line string) reply {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatal(err)
	}
	r := s.reply()
	if !r.OK {
		s.t.Fatalf("%s: %s", line, r.Error)
	}
	return r
}

func echo(t *testing.T) string {
	return testutil.ServeTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

func dial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCommands(t *testing.T) {
	s := start(t, echo(t))
	io.WriteString(s.in, "# comments and blank lines get no reply\n\n")
	s.do("flip s2c 2 0")
	s.do("cut s2c 5")
	c := dial(t, s.addr)
	c.Write([]byte("abcdefgh"))
	got, _ := io.ReadAll(c)
	if string(got) != "abbde" { // 'c' ^ 1 = 'b', cut after 5 bytes
		t.Fatalf("got %q, want %q", got, "abbde")
	}
	st := s.do("stats").Stats
	if st == nil || st.Accepted != 1 || st.Cuts != 1 || st.S2C != 5 || st.Flipped != 1 {
		t.Fatalf("stats %+v", st)
	}

	s.do("heal")
	// stall c2s: nothing reaches the server until it is turned off.
	s.do("stall c2s on")
	c = dial(t, s.addr)
	c.Write([]byte("held"))
	notYet(t, c, "stall c2s on")
	if st := s.do("stats").Stats; st.C2S != 8 || st.S2C != 5 {
		t.Fatalf("stalled c2s, yet stats %+v", st)
	}
	s.do("stall c2s off")
	readBack(t, c, "held", "after stall c2s off")
	// delay s2c: the server answers, the answer waits for the delay.
	s.do("delay s2c 1h")
	c.Write([]byte("late"))
	notYet(t, c, "delay s2c 1h")
	if st := s.do("stats").Stats; st.C2S != 16 || st.S2C != 9 {
		t.Fatalf("delayed s2c, yet stats %+v", st)
	}
	s.do("delay s2c 0s")
	readBack(t, c, "late", "after delay s2c 0s")
	// fliprandom c2s with probability 1: every byte has one bit flipped,
	// on the open connection too; probability 0 stops it.
	s.do("fliprandom c2s 1 7")
	c.Write([]byte("abcd"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		if x := b ^ "abcd"[i]; x == 0 || x&(x-1) != 0 {
			t.Fatalf("fliprandom c2s 1: byte %d arrived as %q (%q sent)", i, buf, "abcd")
		}
	}
	s.do("fliprandom c2s 0 7")
	c.Write([]byte("clean"))
	readBack(t, c, "clean", "after fliprandom c2s 0")
	// cut c2s N, then off: a new connection carries more than N bytes.
	s.do("cut c2s 2")
	s.do("cut c2s off")
	c2 := dial(t, s.addr)
	c2.Write([]byte("uncut"))
	readBack(t, c2, "uncut", "after cut c2s off")

	s.do("drop")
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection survived drop")
	}

	s.do("refuse on")
	if got, _ := io.ReadAll(dial(t, s.addr)); len(got) != 0 {
		t.Fatalf("refused connection delivered %q", got)
	}
	s.do("refuse off")
	if st := s.do("stats").Stats; st.Refused != 1 || st.Dropped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// notYet fails unless a read on c times out: nothing comes back.
func notYet(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes (%v); want nothing yet", what, n, err)
	}
}

// readBack reads len(want) bytes from c and compares them with want.
func readBack(t *testing.T, c net.Conn, want, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		t.Fatalf("%s: %q, %v; want %q", what, buf, err, want)
	}
}

// The fault commands name their direction: with a server that only
// listens, a c2s fault changes what it receives and an s2c one does not.
func TestCommandDirections(t *testing.T) {
	received := make(chan string, 4)
	s := start(t, testutil.ServeTCP(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		received <- string(b)
	}))
	send := func() string {
		c := dial(t, s.addr)
		c.Write([]byte("abcd"))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-received:
			return b
		case <-time.After(30 * time.Second):
			t.Fatal("the server received nothing")
			return ""
		}
	}
	for _, c := range []struct{ set, clear string }{
		{"fliprandom s2c 1 7", "fliprandom s2c 0 7"},
		{"flip s2c 1 0", "heal"},
	} {
		s.do(c.set)
		if got := send(); got != "abcd" {
			t.Errorf("%s changed what the server received: %q", c.set, got)
		}
		s.do(c.clear)
	}
	for _, c := range []struct{ set, clear string }{
		{"fliprandom c2s 1 7", "fliprandom c2s 0 7"},
		{"flip c2s 1 0", "heal"},
	} {
		s.do(c.set)
		if got := send(); got == "abcd" || len(got) != 4 {
			t.Errorf("%s: the server received %q", c.set, got)
		}
		s.do(c.clear)
	}
}

func TestBadCommandsAreReportedNotFatal(t *testing.T) {
	s := start(t, echo(t))
	for _, line := range []string{
		"bogus", "stall", "stall up on", "stall c2s maybe", "cut s2c -3", "cut s2c x",
		"flip c2s 1 8", "flip c2s -1 0", "fliprandom c2s 2 1", "delay s2c fast",
		"refuse", "drop now", "stats please",
	} {
		io.WriteString(s.in, line+"\n")
		if r := s.reply(); r.OK || !strings.HasPrefix(r.Error, strings.Fields(line)[0]+": ") {
			t.Errorf("%q: reply %+v", line, r)
		}
	}
	s.do("stats")
}

func TestQuitAndEOFExit(t *testing.T) {
	s := start(t, echo(t))
	c := dial(t, s.addr)
	s.do("quit")
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	s.done <- nil // for the cleanup
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("proxied connection after quit: %v; want it closed", err)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--listen", "127.0.0.1:0"}, {"--target", "x", "extra"}, {"--nope"}} {
		if err := run(context.Background(), args, strings.NewReader(""), io.Discard, io.Discard); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
