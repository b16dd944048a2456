package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// buildZRS builds the zrs binary into a temporary directory.
func buildZRS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zrs")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is a running zrs process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
}

func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	return launch(t, exec.Command(bin, args...))
}

// launch starts cmd with its stderr captured, reaps it in the background
// and kills it at cleanup if it is still running.
func launch(t *testing.T, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// stop sends SIGTERM and requires a clean exit (status 0).
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.stopWith(t, syscall.SIGTERM)
}

// stopWith sends sig and requires a clean exit (status 0).
func (d *daemon) stopWith(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("%s: %v\nstderr:\n%s", d.cmd.Args[1], err, d.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit after %v\nstderr:\n%s", d.cmd.Args[1], sig, d.stderr)
	}
}

// commitSome appends n transactions to the FileStorage at path.
func commitSome(t *testing.T, path string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		txn, err := st.Begin(ctx, zodb.TxnMeta{Description: []byte(fmt.Sprintf("commit %d", i))}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oid, _ := st.NewOid(ctx)
		if err := txn.Store(oid, 0, []byte("data "+strings.Repeat("x", i*10))); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitSameFile waits until the two files have the same bytes.
func waitSameFile(t *testing.T, a, b string, logs ...*daemon) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ab, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if len(ab) > 4 && bytes.Equal(ab, bb) {
			return
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, d := range logs {
				fmt.Fprintf(&sb, "%s stderr:\n%s\n", d.cmd.Args[1], d.stderr)
			}
			t.Fatalf("%s (%d bytes) and %s (%d bytes) did not converge\n%s", a, len(ab), b, len(bb), sb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The binaries replicate, survive a primary restart, and stop cleanly on
// SIGTERM (the secondary on SIGHUP: its terminal closed), leaving
// byte-identical files and saved indexes.
func TestPrimarySecondaryCommands(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath, sock := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs"), filepath.Join(dir, "p.sock")
	commitSome(t, ppath, 30)

	p := startDaemon(t, bin, "primary", ppath, "--replicate-to", sock)
	s := startDaemon(t, bin, "secondary", spath, "--replicate-from", sock, "--keep-alive", "50ms")
	waitSameFile(t, ppath, spath, p, s)

	p.stop(t)
	commitSome(t, ppath, 20) // committed while the primary is down
	p = startDaemon(t, bin, "primary", ppath, "--replicate-to", sock)
	waitSameFile(t, ppath, spath, p, s)

	s.stopWith(t, syscall.SIGHUP)
	p.stop(t)
	for _, path := range []string{ppath, spath} {
		if _, err := os.Stat(path + ".index"); err != nil {
			t.Errorf("index not saved: %v", err)
		}
	}
	for _, want := range []string{"primary started", "secondary connected", "primary stopped"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("primary log lacks %q:\n%s", want, p.stderr)
		}
	}
	for _, want := range []string{"connected to primary", "recovered", "secondary stopped"} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("secondary log lacks %q:\n%s", want, s.stderr)
		}
	}
}

// A relay (secondary with --replicate-to) passes on what it receives.
func TestSecondaryRelayCommand(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, rpath, spath := filepath.Join(dir, "p.fs"), filepath.Join(dir, "r.fs"), filepath.Join(dir, "s.fs")
	commitSome(t, ppath, 25)
	p := startDaemon(t, bin, "primary", ppath, "--replicate-to", filepath.Join(dir, "p.sock"))
	r := startDaemon(t, bin, "secondary", rpath, "--replicate-from", filepath.Join(dir, "p.sock"), "--replicate-to", filepath.Join(dir, "r.sock"))
	s := startDaemon(t, bin, "secondary", spath, "--replicate-from", filepath.Join(dir, "r.sock"))
	waitSameFile(t, ppath, spath, p, r, s)
	s.stop(t)
	r.stop(t)
	p.stop(t)
}

// An address already in use, or a TLS file that does not load, fails the
// start with exit 1 and a message naming which of the daemon's settings
// it is, before the storage is opened (which may scan a big file for
// minutes): no Data.fs is created. A storage another process holds is
// reported as such even when its addresses are busy too.
func TestStartErrorNamesTheAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	missing := filepath.Join(t.TempDir(), "none.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replicate-to", addr}, "replication (--replicate-to, replication.listen)"},
		{[]string{"--replicate-to", "127.0.0.1:0", "--admin", addr}, "admin endpoint (--admin, admin)"},
		{[]string{"--zeo", addr}, "zeo (--zeo, zeo.address): listen " + addr},
		{[]string{"--zeo", "127.0.0.1:0", "--zeo-cert", missing, "--zeo-key", missing}, "--zeo-cert " + missing},
	} {
		path := filepath.Join(t.TempDir(), "Data.fs")
		code, _, errs := zrs(t, append([]string{"primary", path}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, %q; want 1 and a message naming %q", tc.args, code, errs, tc.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q: the storage was opened before the failure (%v)", tc.args, err)
		}
	}

	path := filepath.Join(t.TempDir(), "Data.fs")
	held, err := fs.LockStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, _, errs := zrs(t, "primary", path, "--zeo", addr)
	if code != 1 || !strings.Contains(errs, "locked by pid") || strings.Contains(errs, addr) {
		t.Errorf("locked storage, busy address: exit %d, %q; want 1 and the lock's holder", code, errs)
	}
}

// A second signal during a graceful stop ends the process at once,
// whether the stop began with SIGTERM or with SIGHUP (a closed terminal).
// The stop is held by a zrs2 "secondary" that never closes its end (the
// primary waits for it, up to the stop deadline).
func TestSecondSignalForcesTheStop(t *testing.T) {
	bin := buildZRS(t)
	for _, first := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		dir := t.TempDir()
		sock := filepath.Join(dir, "p.sock")
		p := startDaemon(t, bin, "primary", filepath.Join(dir, "Data.fs"), "--replicate-to", sock)
		var conn net.Conn
		deadline := time.Now().Add(30 * time.Second)
		for conn == nil {
			c, err := net.Dial("unix", sock)
			if err == nil {
				conn = c
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
		defer conn.Close()
		if err := zrsproto.WriteHandshake(conn, zrsproto.Proto20, 0); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(p.stderr.String(), "secondary connected") {
			if time.Now().After(deadline) {
				t.Fatalf("no secondary connected:\n%s", p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.cmd.Process.Signal(first)
		for !strings.Contains(p.stderr.String(), "stopping primary") {
			if time.Now().After(deadline) {
				t.Fatalf("%v did not start the stop:\n%s", first, p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case err := <-p.done:
			t.Fatalf("after %v: exited (%v) although the stop was held", first, err)
		case <-time.After(300 * time.Millisecond):
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err == nil {
				t.Errorf("after %v then SIGTERM: a clean exit; want the process ended by the signal", first)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after %v, a SIGTERM during the stop did not end the process\n%s", first, p.stderr)
		}
	}
}

// While a stopping primary lets a ZEO transaction in flight finish, a
// secondary can still connect (with sync durability that commit waits
// for one) and gets what was committed.
func TestSecondaryConnectsDuringTheZEODrain(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "p.sock")
	commitSome(t, filepath.Join(dir, "Data.fs"), 5)
	p := startDaemon(t, bin, "primary", filepath.Join(dir, "Data.fs"), "--replicate-to", sock, "--zeo", "127.0.0.1:0")
	deadline := time.Now().Add(30 * time.Second)
	var zaddr string
	for zaddr == "" {
		if m := regexp.MustCompile(`msg="serving ZEO" addr=(\S+)`).FindStringSubmatch(p.stderr.String()); m != nil {
			zaddr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no ZEO address:\n%s", p.stderr)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A ZEO client with a transaction in progress (begun, not voted).
	zc, err := net.Dial("tcp", zaddr)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	zc.SetDeadline(time.Now().Add(30 * time.Second))
	if hello, err := zeo.ReadFrame(zc, 64); err != nil || string(hello) != "Z5" {
		t.Fatalf("ZEO hello %q %v", hello, err)
	}
	send := func(m *zeo.Message) {
		p, err := zeo.PickleCodec.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zc.Write(zeo.AppendFrame(nil, p)); err != nil {
			t.Fatal(err)
		}
	}
	zc.Write(zeo.AppendFrame(nil, []byte("Z5")))
	send(&zeo.Message{ID: pyval.Int(1), Flags: zeo.FlagReply, Name: "register", Args: pyval.Tuple(pyval.Str("1"), pyval.Bool(false))})
	if _, err := zeo.ReadFrame(zc, 1<<20); err != nil {
		t.Fatal(err)
	}
	send(&zeo.Message{ID: pyval.Int(0), Flags: zeo.FlagOneWay, Name: "tpc_begin", Args: pyval.Tuple(pyval.Int(1),
		pyval.Bytes(nil), pyval.Bytes(nil), pyval.Dict(), pyval.None(), pyval.Str(" "))})
	time.Sleep(200 * time.Millisecond) // the server has the tpc_begin
	p.cmd.Process.Signal(syscall.SIGTERM)
	for !strings.Contains(p.stderr.String(), "stopping primary") {
		if time.Now().After(deadline) {
			t.Fatalf("no stop:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The drain waits for the transaction; a secondary connects meanwhile.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the replication socket is closed while the ZEO drain runs: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := zrsproto.WriteHandshake(c, zrsproto.Proto20, 0); err != nil {
		t.Fatal(err)
	}
	sr := zrsproto.NewStreamReader(c, 0)
	if _, err := sr.ReadTxn(); err != nil {
		t.Fatalf("the secondary that connected during the drain got nothing: %v\n%s", err, p.stderr)
	}
	zc.Close()                                        // the transaction is aborted; the stop goes on
	go func() { io.Copy(io.Discard, c); c.Close() }() // a secondary closes at the end of the stream
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not stop:\n%s", p.stderr)
	}
}
