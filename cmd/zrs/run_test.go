package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/internal/config"
)

// notifySocket is a test NOTIFY_SOCKET: it keeps every datagram a daemon
// sends, in order.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	more chan struct{} // closed and replaced on each message
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, more: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	return n
}

// await waits for a message for which match is true, at or after index
// from, and returns its index.
func (n *notifySocket) await(t *testing.T, from int, what string, match func(string) bool, d *daemon) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		n.mu.Lock()
		for i := from; i < len(n.msgs); i++ {
			if match(n.msgs[i]) {
				n.mu.Unlock()
				return i
			}
		}
		more := n.more
		n.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET; got %q\nstderr:\n%s", what, n.all(), d.stderr)
		}
	}
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.msgs)
}

func (n *notifySocket) msg(i int) string { return n.all()[i] }

// startRun starts "zrs run --config cfg" as systemd would: the sockets
// in lns as fds 3, 4, ... named by names (LISTEN_FDNAMES), LISTEN_PID set
// to the child's own pid by a shell that then execs zrs in place.
func startRun(t *testing.T, bin, cfg string, lns []*os.File, names string, env ...string) *daemon {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	if len(lns) > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FDS=%d", len(lns)), "LISTEN_FDNAMES="+names)
		cmd.ExtraFiles = lns
	}
	return launch(t, cmd)
}

// wait waits for the child to exit and returns its exit code.
func (d *daemon) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatalf("zrs run did not exit\nstderr:\n%s", d.stderr)
	}
	return -1
}

func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until the child's stderr contains every one of want.
func (d *daemon) waitLog(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := ""
		for _, w := range want {
			if !strings.Contains(d.stderr.String(), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zrs %s log lacks %q:\n%s", d.cmd.Args[1], missing, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpSocket opens a listening socket the way a socket unit does and
// returns its address and file (to pass to a child).
func tcpSocket(t *testing.T) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}

func writeConfig(t *testing.T, path string, c *config.Config) {
	t.Helper()
	b, err := config.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lastTid is the last transaction of a closed Data.fs, in hex.
func lastTid(t *testing.T, path string) string {
	t.Helper()
	st, err := fs.Open(path, fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return st.LastTransaction().Hex()
}

// A primary under "zrs run" serves ZEO and replication on the sockets
// systemd passed (named zeo and replication), and a secondary under "zrs
// run" (listening itself) replicates from it; both report READY=1, then
// STATUS lines, watchdog pings, STOPPING=1 on SIGTERM, and exit 0. SIGHUP
// applies log_level and names what needs a restart.
func TestRunSocketActivationAndNotify(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "p.fs"), filepath.Join(dir, "s.fs")
	commitSome(t, ppath, 20)
	tid := lastTid(t, ppath)

	zeoAddr, zeoFile := tcpSocket(t)
	replAddr, replFile := tcpSocket(t)
	pcfg := &config.Config{Name: "main", Role: config.Primary, Path: ppath, LogLevel: "info",
		ZEO: config.NewZEO(zeoAddr), Replication: &config.Replication{Listen: replAddr}, Durability: config.NewDurability()}
	pcfgPath := filepath.Join(dir, "main.yaml")
	writeConfig(t, pcfgPath, pcfg)
	pn := listenNotify(t, filepath.Join(dir, "p.notify"))
	p := startRun(t, bin, pcfgPath, []*os.File{zeoFile, replFile}, "zeo:replication",
		"NOTIFY_SOCKET="+pn.path, "WATCHDOG_USEC=400000")

	ready := pn.await(t, 0, "READY=1", func(m string) bool { return m == "READY=1" }, p)
	if msgs := pn.all(); slices.ContainsFunc(msgs[:ready], func(m string) bool { return strings.HasPrefix(m, "STATUS=") }) {
		t.Errorf("STATUS before READY: %q", msgs)
	}
	// Opening the storage extends the start timeout first (a long scan
	// must not be killed by systemd and begun again).
	if got := pn.msg(0); got != "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=main: opening the storage" || ready == 0 {
		t.Errorf("first notification %q (READY is message %d); want the start timeout extended while opening", got, ready)
	}
	first := pn.await(t, ready, "first STATUS", func(m string) bool { return strings.HasPrefix(m, "STATUS=") }, p)
	if got, want := pn.msg(first), "STATUS=main: primary, last tid "+tid+", 0 secondaries, 0 ZEO clients"; got != want {
		t.Errorf("first status %q, want %q", got, want)
	}
	p.waitLog(t, "using the ZEO socket passed by systemd", "using the replication socket passed by systemd",
		"serving ZEO", "addr="+zeoAddr, "primary started")
	wd := pn.await(t, ready, "WATCHDOG=1", func(m string) bool { return m == "WATCHDOG=1" }, p)
	pn.await(t, wd+1, "a second WATCHDOG=1 (the keep-alive)", func(m string) bool { return m == "WATCHDOG=1" }, p)

	// ZEO on the inherited socket: the server speaks first, announcing Z5.
	c, err := net.DialTimeout("tcp", zeoAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	hello, err := zeo.ReadFrame(c, 64)
	if err != nil || string(hello) != "Z5" {
		t.Errorf("ZEO handshake on the inherited socket: %q, %v", hello, err)
	}
	c.Close()

	// A secondary under zrs run, listening itself, replicates from the
	// inherited replication socket.
	scfg := &config.Config{Name: "replica", Role: config.Secondary, Path: spath, LogLevel: "info",
		Replication: &config.Replication{From: replAddr, KeepAlive: 100 * time.Millisecond}}
	scfgPath := filepath.Join(dir, "replica.yaml")
	writeConfig(t, scfgPath, scfg)
	sn := listenNotify(t, filepath.Join(dir, "s.notify"))
	s := startRun(t, bin, scfgPath, nil, "", "NOTIFY_SOCKET="+sn.path)
	sn.await(t, 0, "READY=1", func(m string) bool { return m == "READY=1" }, s)
	waitSameFile(t, ppath, spath)
	sn.await(t, 0, "caught-up STATUS", func(m string) bool {
		return m == "STATUS=replica: secondary, last tid "+tid+", connected, caught up"
	}, s)
	pn.await(t, first, "STATUS with the secondary", func(m string) bool {
		return m == "STATUS=main: primary, last tid "+tid+", 1 secondary, 0 ZEO clients"
	}, p)

	// SIGHUP: log_level applies, the changed ZEO address needs a restart.
	pcfg.LogLevel = "debug"
	pcfg.ZEO.Address = "127.0.0.1:1"
	writeConfig(t, pcfgPath, pcfg)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, `msg="config reloaded"`, "log_level=debug", `msg="config changes need a restart to apply"`, "keys=zeo.address")
	if strings.Contains(p.stderr.String(), "level=DEBUG") {
		t.Fatalf("debug lines before the reload asked for them:\n%s", p.stderr)
	}
	// Applied: a connection that ends before its handshake, the second
	// time from a host, is logged at debug level.
	for range 2 {
		c, err := net.Dial("tcp", replAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	p.waitLog(t, "level=DEBUG")
	os.WriteFile(pcfgPath, []byte("name: main\nrole: primary\nzeo:\n  adress: 1\n"), 0o644)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, `msg="config reload failed; running on unchanged"`, "main.yaml:4: zeo.adress: unknown field")
	// Unchanged: still at debug level.
	debugLines := strings.Count(p.stderr.String(), "level=DEBUG")
	for range 2 {
		c, err := net.Dial("tcp", replAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); strings.Count(p.stderr.String(), "level=DEBUG") == debugLines; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no debug line after a reload that failed; it must change nothing:\n%s", p.stderr)
		}
	}

	// The indexes on disk so far were written by commitSome and by the
	// opens: only the stop must bring them back.
	for _, path := range []string{ppath, spath} {
		if err := os.Remove(path + ".index"); err != nil {
			t.Fatal(err)
		}
	}
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t); code != 0 {
		t.Fatalf("secondary exit %d\n%s", code, s.stderr)
	}
	sn.await(t, 0, "STOPPING=1", func(m string) bool { return strings.HasPrefix(m, "STOPPING=1") }, s)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("primary exit %d\n%s", code, p.stderr)
	}
	pn.await(t, ready, "STOPPING=1", func(m string) bool { return m == "STOPPING=1\nSTATUS=main: stopping" }, p)
	for _, want := range []string{"primary stopped", "secondary connected"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("primary log lacks %q:\n%s", want, p.stderr)
		}
	}
	if !strings.Contains(s.stderr.String(), "secondary stopped") {
		t.Errorf("secondary log lacks %q:\n%s", "secondary stopped", s.stderr)
	}
	for _, path := range []string{ppath, spath} {
		if _, err := os.Stat(path + ".index"); err != nil {
			t.Errorf("index not saved: %v", err)
		}
	}
}

// Unnamed passed sockets are matched to the config by address; one that
// matches nothing fails the start, naming it.
func TestRunInheritedSocketsByAddress(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	zeoAddr, zeoFile := tcpSocket(t)
	strayAddr, strayFile := tcpSocket(t)
	cfg := &config.Config{Name: "main", Role: config.Primary, Path: filepath.Join(dir, "p.fs"), LogLevel: "info",
		ZEO: config.NewZEO(zeoAddr)}
	cfgPath := filepath.Join(dir, "main.yaml")
	writeConfig(t, cfgPath, cfg)

	d := startRun(t, bin, cfgPath, []*os.File{zeoFile, strayFile}, "")
	if code := d.wait(t); code != 1 {
		t.Fatalf("exit %d with a stray socket, want 1\n%s", code, d.stderr)
	}
	want := fmt.Sprintf(`zrs: socket "LISTEN_FD_4" (%s) passed by systemd matches neither zeo.address (%q) nor replication.listen ("") of %s`, strayAddr, zeoAddr, cfgPath)
	if !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, d.stderr)
	}

	n := listenNotify(t, filepath.Join(dir, "notify"))
	d = startRun(t, bin, cfgPath, []*os.File{zeoFile}, "zrs-zeo@main.socket", "NOTIFY_SOCKET="+n.path)
	n.await(t, 0, "READY=1", func(m string) bool { return m == "READY=1" }, d)
	d.waitLog(t, "using the ZEO socket passed by systemd", "addr="+zeoAddr)
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
}

// A start that fails never says READY=1: systemd reports the failed
// start instead of a service that then dies.
func TestRunFailedStartIsNotReady(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	cfg := &config.Config{Name: "main", Role: config.Primary, Path: filepath.Join(dir, "missing", "p.fs"), LogLevel: "info",
		ZEO: config.NewZEO(filepath.Join(dir, "zeo.sock"))}
	cfgPath := filepath.Join(dir, "main.yaml")
	writeConfig(t, cfgPath, cfg)
	n := listenNotify(t, filepath.Join(dir, "notify"))
	d := startRun(t, bin, cfgPath, nil, "", "NOTIFY_SOCKET="+n.path)
	if code := d.wait(t); code != 1 {
		t.Fatalf("exit %d with the storage's directory missing, want 1\n%s", code, d.stderr)
	}
	n.await(t, 0, "EXTEND_TIMEOUT_USEC", func(m string) bool { return strings.HasPrefix(m, "EXTEND_TIMEOUT_USEC=") }, d)
	for _, m := range n.all() {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("a failed start sent %q: %q\n%s", m, n.all(), d.stderr)
		}
	}
}

// Sockets passed to another process (LISTEN_PID not this one's: the
// variables leaked from a parent) are not taken: zrs listens itself.
func TestRunIgnoresSocketsForAnotherProcess(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	zeoSock := filepath.Join(dir, "zeo.sock")
	cfg := &config.Config{Name: "main", Role: config.Primary, Path: filepath.Join(dir, "p.fs"), LogLevel: "info",
		ZEO: config.NewZEO(zeoSock)}
	cfgPath := filepath.Join(dir, "main.yaml")
	writeConfig(t, cfgPath, cfg)
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=zeo:replication")
	d := launch(t, cmd)
	d.waitLog(t, "serving ZEO", zeoSock)
	if strings.Contains(d.stderr.String(), "passed by systemd") {
		t.Errorf("sockets meant for pid 1 were taken:\n%s", d.stderr)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
}

// A passed socket zrs cannot serve (a datagram socket: a socket unit
// with ListenDatagram=) fails the start, saying so, rather than being
// dropped while zrs listens on the address itself.
func TestRunRefusesDatagramSocket(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := &config.Config{Name: "main", Role: config.Primary, Path: filepath.Join(dir, "p.fs"), LogLevel: "info",
		ZEO: config.NewZEO(filepath.Join(dir, "zeo.sock"))}
	cfgPath := filepath.Join(dir, "main.yaml")
	writeConfig(t, cfgPath, cfg)
	d := startRun(t, bin, cfgPath, []*os.File{f}, "zeo")
	if code := d.wait(t); code != 1 {
		t.Fatalf("exit %d with a datagram socket passed, want 1\n%s", code, d.stderr)
	}
	if want := "1 of LISTEN_FDS=1 are not listening stream sockets"; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, d.stderr)
	}
}

func TestAssignListeners(t *testing.T) {
	dir := t.TempDir()
	listen := func(network, addr string) net.Listener {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	tcp := listen("tcp", "127.0.0.1:0")
	anyIf := listen("tcp", ":0")
	sock := filepath.Join(dir, "r.sock")
	unix := listen("unix", sock)
	anyPort := fmt.Sprint(anyIf.Addr().(*net.TCPAddr).Port)
	cfg := &config.Config{Name: "n", Role: config.Primary, Path: "p", LogLevel: "info",
		ZEO: config.NewZEO(tcp.Addr().String()), Replication: &config.Replication{Listen: dir + "/./r.sock"}}

	z, r, err := assignListeners(cfg, map[string][]net.Listener{"a": {tcp}, "b": {unix}})
	if err != nil || !slices.Equal(z, []net.Listener{tcp}) || !slices.Equal(r, []net.Listener{unix}) {
		t.Errorf("by address: %v %v %v", z, r, err)
	}
	z, r, err = assignListeners(cfg, map[string][]net.Listener{"zeo": {anyIf}, "replication": {tcp}})
	if err != nil || !slices.Equal(z, []net.Listener{anyIf}) || !slices.Equal(r, []net.Listener{tcp}) {
		t.Errorf("by name: %v %v %v", z, r, err)
	}
	cfg.ZEO.Address = anyPort
	if z, _, err = assignListeners(cfg, map[string][]net.Listener{"x": {anyIf}}); err != nil || len(z) != 1 {
		t.Errorf("a bare port matches a socket on every interface: %v %v", z, err)
	}
	cfg.ZEO.Address = "localhost:" + fmt.Sprint(tcp.Addr().(*net.TCPAddr).Port)
	if z, _, err = assignListeners(cfg, map[string][]net.Listener{"x": {tcp}}); err != nil || len(z) != 1 {
		t.Errorf("a host name matches its addresses: %v %v", z, err)
	}
	if _, _, err = assignListeners(cfg, map[string][]net.Listener{"x": {anyIf}}); err == nil || !strings.Contains(err.Error(), `socket "x"`) {
		t.Errorf("stray socket: %v", err)
	}
	cfg.ZEO = nil
	if _, _, err = assignListeners(cfg, map[string][]net.Listener{"zeo": {tcp}}); err == nil || !strings.Contains(err.Error(), "has no zeo.address") {
		t.Errorf("zeo socket without zeo.address: %v", err)
	}
	cfg.Replication = nil
	if _, _, err = assignListeners(cfg, map[string][]net.Listener{"replication": {tcp}}); err == nil || !strings.Contains(err.Error(), "has no replication.listen") {
		t.Errorf("replication socket without replication.listen: %v", err)
	}
}

func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: main\nrole: primary\npath: x\nzeo:\n  adress: 8100\n"), 0o644)
	code, _, errs := zrs(t, "run", "--config", bad)
	if code != 1 || !strings.Contains(errs, bad+":5: zeo.adress: unknown field") {
		t.Errorf("code %d, stderr %q", code, errs)
	}
	code, _, errs = zrs(t, "run", "--config", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing: code %d, stderr %q", code, errs)
	}
	if code, out, _ := zrs(t, "run", "--help"); code != 0 || !strings.Contains(out, "Usage: zrs run --config FILE.yaml") {
		t.Errorf("--help: %d %q", code, out)
	}
}

// A config file says what the secondary's flags say: every replication
// key reaches the secondary's options.
func TestNodeOptionsFromSecondaryConfig(t *testing.T) {
	c, err := config.Parse("r.yaml", []byte("name: r\nrole: secondary\npath: /x/Data.fs\n"+
		"replication: {from: '8101', protocol: zrs2, keep_alive: 5s, read_timeout: 2m, idle_timeout: 9s, compression: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := nodeOptionsFrom(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := o.secondary
	if s.Protocol != secondary.ProtoZRS2 || s.KeepAlive != 5*time.Second || s.ReadTimeout != 2*time.Minute || s.IdleTimeout != 9*time.Second || !s.NoCompression {
		t.Errorf("secondary options %+v", s)
	}
	// Compression is accepted unless the key says false.
	for _, yaml := range []string{"", ", compression: true"} {
		c, err := config.Parse("r.yaml", []byte("name: r\nrole: secondary\npath: /x/Data.fs\nreplication: {from: '8101'"+yaml+"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if o, err := nodeOptionsFrom(c, slog.New(slog.DiscardHandler)); err != nil || o.secondary.NoCompression {
			t.Errorf("replication {from%s}: NoCompression %v, %v", yaml, o.secondary.NoCompression, err)
		}
	}
}

// zeo.storage reaches the ZEO server's name; without it the name is "1".
func TestNodeOptionsFromZEOStorageName(t *testing.T) {
	for yaml, want := range map[string]string{"": "1", ", storage: catalog": "catalog"} {
		c, err := config.Parse("m.yaml", []byte("name: m\nrole: primary\npath: /x/Data.fs\nzeo: {address: '8100'"+yaml+"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		o, err := nodeOptionsFrom(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if o.zeo.storage != want {
			t.Errorf("zeo {address%s}: storage %q, want %q", yaml, o.zeo.storage, want)
		}
	}
}

// zrs run starts with settings that change nothing, and logs them.
func TestRunLogsConfigWarnings(t *testing.T) {
	c, err := config.Parse("/etc/zrs/m.yaml", []byte("name: m\nrole: primary\npath: /x/Data.fs\nzeo: {address: '8100'}\ndurability:\n  level: async\n  sync_timeout: 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	logWarnings(newDaemonLogger(&b, slog.LevelInfo), c)
	if !strings.Contains(b.String(), "level=WARN") || !strings.Contains(b.String(), "/etc/zrs/m.yaml:7: durability.sync_timeout: applies to level: sync only") {
		t.Errorf("log: %s", b.String())
	}
}
