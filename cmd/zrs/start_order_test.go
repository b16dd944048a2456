package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/config"
)

// stillOpen reports whether ln still accepts (it was not closed).
func stillOpen(t *testing.T, ln net.Listener) bool {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := ln.Accept()
	return !errors.Is(err, net.ErrClosed)
}

// "On error nothing is left open" (startNode), and bind
// closes "every listener, passed or not" on its errors, as does a failed
// fs.Open; but when the storage's lock is held by another process the
// sockets systemd passed (zrs run) are left open.
func TestLockedStorageClosesPassedListeners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	held, err := fs.LockStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	zln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer zln.Close()
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rln.Close()
	o := nodeOptions{role: config.Primary, path: path, log: slog.New(slog.DiscardHandler),
		zeo: zeoFlags{addr: zln.Addr().String()}, replicateTo: rln.Addr().String(),
		zeoLns: []net.Listener{zln}, replicationLns: []net.Listener{rln}}
	if _, err := startNode(context.Background(), o); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("startNode on a locked storage: %v", err)
	}
	if stillOpen(t, zln) || stillOpen(t, rln) {
		t.Error("the failed start left the passed sockets open")
	}
}

// bind loads the ZEO TLS files before the storage opens, then
// throws what it loaded away; the ZEO server loads them again after the
// open (which may scan the whole file for minutes). A certificate renewed
// or removed meanwhile fails the start after the scan, and the files
// actually served are not the ones that were checked.
func TestTLSFilesAreReadOnceBeforeTheOpen(t *testing.T) {
	f := newAuthFixture(t, newTestCA(t, "clients").pem())
	path := filepath.Join(t.TempDir(), "Data.fs")
	commitSome(t, path, 3)
	// Hold the open inside its read of the index: a FIFO blocks the
	// reader until a writer comes, standing for a long scan.
	indexFIFO(t, path)
	o := nodeOptions{role: config.Primary, path: path, log: slog.New(slog.DiscardHandler), zeo: *f.z}
	o.zeo.maxTxnMB = 1
	started := make(chan error, 1)
	go func() {
		n, err := startNode(context.Background(), o)
		if err == nil {
			n.closeOnError()
		}
		started <- err
	}()
	w, err := os.OpenFile(path+".index", os.O_WRONLY, 0) // returns once the open reads it
	if err != nil {
		t.Fatal(err)
	}
	// bind has checked the TLS files; they change during the "scan".
	os.Remove(o.zeo.key)
	w.Close() // an empty index: rebuilt, the open goes on
	if err := <-started; err != nil {
		t.Errorf("the start, whose TLS files were checked before the open, failed after it: %v", err)
	}
}

// the admin endpoint listens while the storage opens (a scan of minutes
// without an index), so that a wrong address fails the start first. It
// must answer at once that the daemon is starting: a request left
// unanswered would wait in the socket, and a "zrs promote" that gave up
// (the operator told it failed) would promote the node once the open
// ended.
func TestAdminAnswersStartingDuringTheOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	commitSome(t, path, 3)
	indexFIFO(t, path)
	sock := filepath.Join(dir, "admin.sock")
	o := nodeOptions{role: config.Secondary, path: path, log: slog.New(slog.DiscardHandler),
		replicateFrom: filepath.Join(dir, "nobody.sock"), admin: sock}
	started := startAsync(context.Background(), o)
	w, err := os.OpenFile(path+".index", os.O_WRONLY, 0) // the open is under way
	if err != nil {
		t.Fatal(err)
	}
	c, err := admin.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	// "zrs promote SOCK" and "zrs status SOCK", with 5 s instead of 40.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, perr := c.Promote(ctx)
	_, _, serr := c.Status(ctx)
	cancel()
	// A scrape fails too (Prometheus: up == 0), rather than show a
	// healthy target without the node's series.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	if resp, err := hc.Get("http://zrs/metrics"); err != nil {
		t.Errorf("scrape during the open: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("scrape during the open: %s, want 503", resp.Status)
		}
	}
	for what, err := range map[string]error{"promote": perr, "status": serr} {
		if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "the daemon is starting") {
			t.Errorf("%s during the open: %v; want an answer saying the daemon is starting", what, err)
		}
	}
	w.Close() // the open ends
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.n.closeOnError()
	time.Sleep(200 * time.Millisecond)
	if r.n.sec.Promoted() {
		t.Error("the promotion refused during the open happened after it")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, _, err := c.Status(ctx); err != nil || st.Role != admin.RoleSecondary {
		t.Errorf("status once started: %+v %v", st, err)
	}
	if res, err := c.Promote(ctx); err != nil || res.Role != admin.RolePrimary {
		t.Errorf("promote once started: %+v %v", res, err)
	}
}

// zrs run itself logs the settings that change nothing: a start that
// fails on a missing directory right after reading its config.
func TestRunLogsWarningsEndToEnd(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(cfg, []byte("name: m\nrole: primary\npath: /none/Data.fs\nzeo: {address: '127.0.0.1:1'}\ndurability:\n  level: async\n  sync_timeout: 10s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := zrs(t, "run", "--config", cfg)
	if code != 1 || !strings.Contains(errs, "/none does not exist") {
		t.Fatalf("code %d: %q", code, errs)
	}
	if !strings.Contains(errs, "durability.sync_timeout: applies to level: sync only") {
		t.Errorf("zrs run did not log the setting that changes nothing: %q", errs)
	}
}

// A stop that comes while the storage opens (which cannot be cut short)
// ends the start once the open returns, without serving: the ZEO address
// is closed, the storage released, the command exits 0.
func TestStopDuringTheOpenServesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	commitSome(t, path, 3)
	indexFIFO(t, path)
	zsock := filepath.Join(dir, "zeo.sock")
	o := nodeOptions{role: config.Primary, path: path, log: slog.New(slog.DiscardHandler),
		zeo: zeoFlags{addr: zsock, storage: "1", maxTxnMB: 1}}
	ctx, cancel := context.WithCancel(context.Background())
	started := startAsync(ctx, o)
	w, err := os.OpenFile(path+".index", os.O_WRONLY, 0) // the open is under way
	if err != nil {
		t.Fatal(err)
	}
	cancel() // SIGTERM
	w.Close()
	r := <-started
	if r.n != nil {
		r.n.closeOnError()
	}
	if !errors.Is(r.err, errStoppedWhileStarting) {
		t.Fatalf("startNode stopped during the open: %v, %v", r.n, r.err)
	}
	if c, err := net.Dial("unix", zsock); err == nil {
		c.Close()
		t.Error("the ZEO socket still accepts")
	}
	l, err := fs.LockStorage(path)
	if err != nil {
		t.Fatalf("the storage is still held: %v", err)
	}
	l.Close()

	// Each command exits 0, having logged why it served nothing; zrs run
	// tells systemd it is ready, then stopping (a Type=notify service
	// exiting before READY=1 has failed, unless systemd was stopping it).
	bin := buildZRS(t)
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, []byte("name: m\nrole: primary\npath: "+path+"\nzeo: {address: "+zsock+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"primary", path, "--zeo", zsock},
		{"secondary", path, "--replicate-from", filepath.Join(dir, "nobody.sock"), "--replicate-to", filepath.Join(dir, "relay.sock")},
		{"run", "--config", cfg},
	} {
		indexFIFO(t, path)
		cmd := exec.Command(bin, args...)
		n := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path)
		d := launch(t, cmd)
		w, err := os.OpenFile(path+".index", os.O_WRONLY, 0) // its open is under way
		if err != nil {
			t.Fatal(err)
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond) // the signal handled
		w.Close()
		select {
		case err := <-d.done:
			if err != nil || !strings.Contains(d.stderr.String(), "stopped while the storage was opening: not serving") ||
				strings.Contains(d.stderr.String(), "serving ZEO") || strings.Contains(d.stderr.String(), "listening for secondaries") {
				t.Errorf("%s: exit %v\n%s", args[0], err, d.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: still running 30 s after the open ended\n%s", args[0], d.stderr.String())
		}
		if args[0] != "run" {
			continue
		}
		time.Sleep(100 * time.Millisecond) // the last datagrams land
		msgs := n.all()
		ready, stopping := slices.Index(msgs, "READY=1"), -1
		for i, m := range msgs {
			if strings.HasPrefix(m, "STOPPING=1\n") {
				stopping = i
			}
		}
		if ready < 0 || stopping < ready || !strings.Contains(msgs[len(msgs)-1], "STATUS=m: stopped while the storage was opening") {
			t.Errorf("zrs run stopped during the open told systemd %q; want READY=1, then STOPPING=1 with a STATUS saying why", msgs)
		}
	}
}

// indexFIFO puts a FIFO in place of the Data.fs.index of the storage at
// path: an open then waits in its index read until a writer comes and
// goes (openUnderWay), a stand-in for the scan of a big file without its
// index.
func indexFIFO(t *testing.T, path string) {
	t.Helper()
	os.Remove(path + ".index")
	if err := syscall.Mkfifo(path+".index", 0o600); err != nil {
		t.Fatal(err)
	}
}

// startResult is what startNode returned.
type startResult struct {
	n   *node
	err error
}

// startAsync runs startNode in the background.
func startAsync(ctx context.Context, o nodeOptions) <-chan startResult {
	ch := make(chan startResult, 1)
	go func() {
		n, err := startNode(ctx, o)
		ch <- startResult{n, err}
	}()
	return ch
}

// A stop that came before the start began is a clean stop too, not a
// failed listen ("operation was canceled").
func TestStopBeforeTheStart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := nodeOptions{role: config.Primary, path: filepath.Join(dir, "Data.fs"), log: slog.New(slog.DiscardHandler),
		zeo: zeoFlags{addr: filepath.Join(dir, "zeo.sock"), storage: "1", maxTxnMB: 1}}
	if n, err := startNode(ctx, o); !errors.Is(err, errStoppedWhileStarting) {
		if n != nil {
			n.closeOnError()
		}
		t.Fatalf("startNode with its context already done: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Data.fs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the storage was opened: %v", err)
	}
}
