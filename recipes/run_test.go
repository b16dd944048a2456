package recipes

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/testutil"
)

// TestRenderedSiteRuns renders a primary and a secondary (Unix sockets and
// data under a temp dir) and runs the real daemon on each rendered
// NAME.yaml with "zrs run --config", as zrs@NAME.service would without
// its sockets: the secondary connects to the primary, both say so on their
// admin endpoints, and both stop cleanly on SIGTERM.
func TestRenderedSiteRuns(t *testing.T) {
	bin := builtZrs(t)
	dir := t.TempDir()
	site := strings.NewReplacer("DIR", dir).Replace(`defaults:
  data_dir: DIR/data
  log_level: debug
parts:
  main:
    role: primary
    replication: {listen: DIR/repl.sock}
    admin: DIR/main.admin
  replica:
    role: secondary
    replication: {from: DIR/repl.sock, keep_alive: 1s}
    admin: DIR/replica.admin
`)
	s, err := ParseSite("site.yaml", []byte(site))
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if _, err := Apply(s, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	var logs []*testutil.SyncBuffer
	for _, name := range []string{"main", "replica"} {
		if err := os.MkdirAll(filepath.Join(dir, "data", name), 0o755); err != nil {
			t.Fatal(err) // StateDirectory= makes it under systemd
		}
		cmd := exec.Command(bin, "run", "--config", filepath.Join(root, "etc/zrs", name+".yaml"))
		log := &testutil.SyncBuffer{}
		cmd.Stderr = log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, logs = append(procs, cmd), append(logs, log)
	}
	defer func() {
		for _, p := range procs {
			p.Process.Kill() // after a clean stop: already gone
		}
	}()
	want := map[string]string{"main": "1 connected", "replica": "(connected, caught up)"}
	deadline := time.Now().Add(20 * time.Second)
	for name, w := range want {
		for {
			out, _ := exec.Command(bin, "status", filepath.Join(dir, name+".admin")).CombinedOutput()
			if bytes.Contains(out, []byte(w)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("zrs status of %s never said %q; last:\n%s\nlogs:\n%s\n%s", name, w, out, logs[0], logs[1])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, p := range procs {
		if err := p.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Errorf("%s after SIGTERM: %v\n%s", p.Args[3], err, logs[i])
		}
	}
}
