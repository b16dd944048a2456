package recipes

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zrs-replication/zrs/systemd"
)

var (
	zrsOnce sync.Once
	zrsBin  string
	zrsErr  error
)

// builtZrs builds cmd/zrs once per test run, for ExecStart=.
func builtZrs(t *testing.T) string {
	t.Helper()
	zrsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "zrs-recipe-verify")
		if err != nil {
			zrsErr = err
			return
		}
		zrsBin = filepath.Join(dir, "zrs")
		out, err := exec.Command("go", "build", "-o", zrsBin, "../cmd/zrs").CombinedOutput()
		if err != nil {
			zrsErr = &buildError{err, out}
		}
	})
	if zrsErr != nil {
		t.Fatalf("building cmd/zrs for ExecStart: %v", zrsErr)
	}
	return zrsBin
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

func TestMain(m *testing.M) {
	code := m.Run()
	if zrsBin != "" {
		os.RemoveAll(filepath.Dir(zrsBin))
	}
	os.Exit(code)
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on every unit each
// sample site renders, together with the zrs@.service template
// instantiated for each part (with its drop-in, where the part has one).
//
// How, on a machine where systemd is installed but not running (a
// container, CI): the units are copied into one directory, and
// SYSTEMD_UNIT_PATH names it first, its trailing ":" appending the
// system's unit directories so that sockets.target and sysinit.target
// resolve. --root would need a whole systemd tree under the root, and
// verify checks ExecStart= on the real file system, not under --root; so
// the copy of the template runs the zrs binary this test builds instead of
// /usr/bin/zrs, which exists only once the package is installed. Verify
// exits non-zero for errors, but only warns (on stderr) for an unknown key
// or a bad value it ignores, so any output at all fails the test.
func TestSystemdAnalyzeVerify(t *testing.T) {
	bin := builtZrs(t)
	for _, name := range sampleSites {
		t.Run(name, func(t *testing.T) {
			root, s := renderSample(t, name)
			dir := t.TempDir()
			copyTree(t, filepath.Join(root, "etc", "systemd", "system"), dir)
			tmpl := bytes.ReplaceAll(systemd.Service(), []byte("ExecStart=/usr/bin/zrs "), []byte("ExecStart="+bin+" "))
			if bytes.Equal(tmpl, systemd.Service()) {
				t.Fatal("the template has no ExecStart=/usr/bin/zrs to replace")
			}
			if err := os.WriteFile(filepath.Join(dir, "zrs@.service"), tmpl, 0o644); err != nil {
				t.Fatal(err)
			}
			var units []string
			for _, p := range s.Parts {
				units = append(units, ServiceUnit(p.Name))
			}
			sockets, _ := filepath.Glob(filepath.Join(dir, "*.socket"))
			if len(sockets) == 0 {
				t.Fatal("no socket units rendered")
			}
			for _, f := range sockets {
				units = append(units, filepath.Base(f))
			}
			cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", strings.Join(units, " "), err, out)
			}
			t.Logf("verified %s", strings.Join(units, " "))
		})
	}
}
