package recipes

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const threeParts = `parts:
  main:
    role: primary
    zeo: {address: 127.0.0.1:8100}
    replication: {listen: 127.0.0.1:8101}
  replica:
    role: secondary
    replication: {from: 127.0.0.1:8101}
    zeo: {address: 127.0.0.1:8200}
  leaf:
    role: secondary
    user: zodb
    path: /srv/leaf/Data.fs
    replication: {from: 127.0.0.1:8101}
    zeo: {address: /run/zrs/leaf.zeo}
`

func mustSite(t *testing.T, text string) *Site {
	t.Helper()
	s, err := ParseSite("site.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apply(t *testing.T, s *Site, o Options) (*Result, string) {
	t.Helper()
	res, err := Apply(s, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Report(&out, o)
	return res, out.String()
}

func readTree(t *testing.T, root string) map[string][]byte { return tree(t, root) }

func TestApplyIdempotentAndRemoval(t *testing.T) {
	root := t.TempDir()
	o := Options{Root: root}
	res, out := apply(t, mustSite(t, threeParts), o)
	if len(res.Changes) != 8 || !strings.Contains(out, "8 created, 0 unchanged") {
		t.Fatalf("first run:\n%s", out)
	}
	for _, want := range []string{
		"systemctl daemon-reload",
		"systemctl enable --now zrs-zeo@leaf.socket zrs@leaf.service",
		"systemctl enable --now zrs-replication@main.socket zrs-zeo@main.socket zrs@main.service",
	} {
		if !strings.Contains(out, "  "+want+"\n") {
			t.Errorf("first run does not say %q:\n%s", want, out)
		}
	}
	first := readTree(t, root)

	// Again: nothing changes, and it says so.
	res, out = apply(t, mustSite(t, threeParts), o)
	if !res.NoChange || len(res.Changes) != 0 || res.Kept != 8 || out != "zrs-recipe: no changes (8 files up to date under "+root+")\n" {
		t.Fatalf("second run: %+v\n%s", res, out)
	}
	if !sameTree(first, readTree(t, root)) {
		t.Fatal("second run changed the tree")
	}

	// An unrelated file the recipe did not write stays, whatever happens.
	foreign := filepath.Join(root, "etc/zrs/notes.yaml")
	if err := os.WriteFile(foreign, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Remove the leaf: its files go, the others stay byte for byte.
	two := threeParts[:strings.Index(threeParts, "  leaf:")]
	_, out = apply(t, mustSite(t, two), o)
	after := readTree(t, root)
	for _, gone := range []string{"etc/zrs/leaf.yaml", "etc/systemd/system/zrs-zeo@leaf.socket", "etc/systemd/system/zrs@leaf.service.d/zrs-recipe.conf"} {
		if _, ok := after[gone]; ok {
			t.Errorf("%s not removed", gone)
		}
		if !strings.Contains(out, "removed  /"+gone+"\n") {
			t.Errorf("report does not list %s:\n%s", gone, out)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/zrs@leaf.service.d")); !os.IsNotExist(err) {
		t.Errorf("the empty drop-in directory stays: %v", err)
	}
	for p, b := range first {
		if strings.Contains(p, "leaf") || p == strings.TrimPrefix(StateFile, "/") {
			continue
		}
		if !bytes.Equal(after[p], b) {
			t.Errorf("%s changed", p)
		}
	}
	if string(after["etc/zrs/notes.yaml"]) != "mine\n" {
		t.Error("a file the recipe did not write was touched")
	}
	if !strings.Contains(out, "  systemctl stop zrs-zeo@leaf.socket zrs@leaf.service\n") {
		t.Errorf("removal does not say to stop the leaf's units:\n%s", out)
	}
	if res, _ := apply(t, mustSite(t, two), o); !res.NoChange {
		t.Errorf("run after the removal is not idempotent: %+v", res.Changes)
	}
	st, err := loadState(root)
	if err != nil || len(st.Files) != 5 {
		t.Fatalf("state after removal: %+v, %v", st, err)
	}
}

func sameTree(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(b[k], v) {
			return false
		}
	}
	return true
}

func TestApplyRefusesHandEdits(t *testing.T) {
	root := t.TempDir()
	o := Options{Root: root}
	apply(t, mustSite(t, threeParts), o)
	cfg := filepath.Join(root, "etc/zrs/main.yaml")
	edited := []byte("# my edit\n")
	if err := os.WriteFile(cfg, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(threeParts, "127.0.0.1:8100", "127.0.0.1:8102", 1)
	before := readTree(t, root)
	_, err := Apply(mustSite(t, changed), o)
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "/etc/zrs/main.yaml: edited by hand since zrs-recipe wrote it; pass --force to update it anyway") {
		t.Fatalf("err = %v", err)
	}
	if !sameTree(before, readTree(t, root)) {
		t.Fatal("a refused run changed files")
	}
	// Removing the part whose file was edited: refused too.
	_, err = Apply(mustSite(t, "parts:\n"+threeParts[strings.Index(threeParts, "  replica:"):]), o)
	if err == nil || !strings.Contains(err.Error(), "/etc/zrs/main.yaml: edited by hand since zrs-recipe wrote it; pass --force to remove it anyway") {
		t.Fatalf("err = %v", err)
	}
	if !sameTree(before, readTree(t, root)) {
		t.Fatal("a refused run changed files")
	}
	// --force overwrites, and says so.
	o.Force = true
	_, out := apply(t, mustSite(t, changed), o)
	if !strings.Contains(out, "updated  /etc/zrs/main.yaml (forced: edited by hand since zrs-recipe wrote it)") {
		t.Errorf("forced run:\n%s", out)
	}
	if b, _ := os.ReadFile(cfg); bytes.Equal(b, edited) {
		t.Error("--force did not overwrite")
	}
}

func TestApplyRefusesForeignFiles(t *testing.T) {
	root := t.TempDir()
	sock := filepath.Join(root, "etc/systemd/system/zrs-zeo@main.socket")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, []byte("[Socket]\nListenStream=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Apply(mustSite(t, threeParts), Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "zrs-zeo@main.socket: exists but was not written by zrs-recipe") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/zrs")); !os.IsNotExist(err) {
		t.Error("a refused run wrote files")
	}
	// A file already holding exactly what would be rendered is adopted.
	files, _ := Render(mustSite(t, threeParts))
	for _, f := range files {
		if strings.HasSuffix(f.Path, "zrs-zeo@main.socket") {
			os.WriteFile(sock, f.Data, 0o644)
		}
	}
	res, out := apply(t, mustSite(t, threeParts), Options{Root: root})
	if !strings.Contains(out, "adopted  /etc/systemd/system/zrs-zeo@main.socket") || res.NoChange {
		t.Errorf("adoption:\n%s", out)
	}
}

func TestApplyDryRun(t *testing.T) {
	root := t.TempDir()
	o := Options{Root: root, DryRun: true}
	_, out := apply(t, mustSite(t, threeParts), o)
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a dry run wrote %v", entries)
	}
	for _, want := range []string{
		"--- /dev/null\n+++ " + root + "/etc/zrs/main.yaml\n@@ -0,0 +1,",
		"+ListenStream=127.0.0.1:8100\n",
		"zrs-recipe: dry run: 8 created, 0 unchanged; nothing written\n",
		"it would take:\n  systemctl daemon-reload\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	apply(t, mustSite(t, threeParts), Options{Root: root})
	changed := strings.Replace(threeParts, "127.0.0.1:8100", "127.0.0.1:8102", 1)
	before := readTree(t, root)
	_, out = apply(t, mustSite(t, changed), o)
	if !sameTree(before, readTree(t, root)) {
		t.Fatal("a dry run changed files")
	}
	want := "-  address: 127.0.0.1:8100\n+  address: 127.0.0.1:8102\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "-ListenStream=127.0.0.1:8100\n+ListenStream=127.0.0.1:8102\n") {
		t.Errorf("dry run diff lacks the change:\n%s", out)
	}
	if !strings.Contains(out, "  systemctl stop zrs@main.service\n  systemctl restart zrs-zeo@main.socket\n  systemctl start zrs@main.service\n") {
		t.Errorf("dry run does not say how to restart a changed socket:\n%s", out)
	}
}

// With Systemctl set, the recipe runs the commands itself: disabling the
// units of a removed part before removing their files.
func TestApplyRunsSystemctl(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "log")
	fake := filepath.Join(dir, "systemctl")
	script := "#!/bin/sh\necho \"$* | $(ls " + root + "/etc/zrs 2>/dev/null | tr '\\n' ' ')\" >> " + log + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Root: root, Systemctl: []string{fake}}
	apply(t, mustSite(t, threeParts), o)
	// log_level alone applies on reload (SIGHUP); with another key, a restart.
	config := strings.Replace(threeParts, "127.0.0.1:8101}\n  replica", "127.0.0.1:8101}\n    log_level: debug\n  replica", 1)
	apply(t, mustSite(t, config), o)
	config = strings.Replace(config, "log_level: debug", "log_level: warn", 1)
	apply(t, mustSite(t, strings.Replace(config, "zeo: {address: 127.0.0.1:8100}", "zeo: {address: 127.0.0.1:8100, max_transaction_mb: 64}", 1)), o)
	apply(t, mustSite(t, config), o)
	// Enable the leaf's socket, as systemctl enable would have, then drop the leaf.
	wants := filepath.Join(root, "etc/systemd/system/sockets.target.wants")
	os.MkdirAll(wants, 0o755)
	os.Symlink("/etc/systemd/system/zrs-zeo@leaf.socket", filepath.Join(wants, "zrs-zeo@leaf.socket"))
	two := config[:strings.Index(config, "  leaf:")]
	if _, err := Apply(mustSite(t, two), Options{Root: root}); err == nil ||
		!strings.Contains(err.Error(), `units to remove are still enabled (zrs-zeo@leaf.socket): run "systemctl disable --now zrs-zeo@leaf.socket zrs@leaf.service" first, or pass --systemctl`) {
		t.Fatalf("removing enabled units without --systemctl: %v", err)
	}
	apply(t, mustSite(t, two), o)
	got, _ := os.ReadFile(log)
	want := `daemon-reload | leaf.yaml main.yaml replica.yaml 
enable --now zrs-zeo@leaf.socket zrs@leaf.service | leaf.yaml main.yaml replica.yaml 
enable --now zrs-replication@main.socket zrs-zeo@main.socket zrs@main.service | leaf.yaml main.yaml replica.yaml 
enable --now zrs-zeo@replica.socket zrs@replica.service | leaf.yaml main.yaml replica.yaml 
try-reload-or-restart zrs@main.service | leaf.yaml main.yaml replica.yaml 
try-restart zrs@main.service | leaf.yaml main.yaml replica.yaml 
try-restart zrs@main.service | leaf.yaml main.yaml replica.yaml 
disable --now zrs-zeo@leaf.socket zrs@leaf.service | leaf.yaml main.yaml replica.yaml 
daemon-reload | main.yaml replica.yaml 
`
	if string(got) != want {
		t.Errorf("systemctl calls (args | /etc/zrs at the time):\n%s\nwant:\n%s", got, want)
	}
}

func TestApplyBadState(t *testing.T) {
	root := t.TempDir()
	st := filepath.Join(root, StateFile)
	os.MkdirAll(filepath.Dir(st), 0o755)
	os.WriteFile(st, []byte("{not json"), 0o644)
	if _, err := Apply(mustSite(t, threeParts), Options{Root: root}); err == nil || !strings.Contains(err.Error(), "state file "+st+" is damaged") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Apply(mustSite(t, threeParts), Options{Root: st}); err == nil || !strings.Contains(err.Error(), "root "+st+": not a directory") {
		t.Fatalf("err = %v", err)
	}
	// A root that does not exist yet (a new staging tree) is made.
	stage := filepath.Join(root, "stage")
	if _, err := Apply(mustSite(t, threeParts), Options{Root: stage}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stage, "etc/zrs/main.yaml")); err != nil {
		t.Fatal(err)
	}
}

// FuzzLoadState: a damaged state file is an error naming it, never a panic.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":[{"path":"/etc/zrs/a.yaml","part":"a","sha256":"00"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"etc/x","part":"a","sha256":"00"}]}`)) // relative: refused for that alone
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		st := filepath.Join(root, StateFile)
		if err := os.MkdirAll(filepath.Dir(st), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(st, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := loadState(root)
		if err != nil {
			if !strings.Contains(err.Error(), st) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, f := range s.Files {
			if !filepath.IsAbs(f.Path) {
				t.Fatalf("relative path accepted: %+v", f)
			}
		}
	})
}

// Every file rendered from a site file says which file to edit, by its
// own name.
func TestRenderedFilesNameTheirSiteFile(t *testing.T) {
	s, err := ParseSite("/etc/zrs/hosts.yaml", []byte(threeParts))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		kinds[path.Ext(f.Path)] = true
		if !strings.Contains(string(f.Data), "Edit hosts.yaml") || strings.Contains(string(f.Data), "site.yaml") {
			t.Errorf("%s does not name hosts.yaml as the file to edit:\n%s", f.Path, f.Data)
		}
	}
	if !kinds[".yaml"] || !kinds[".socket"] || !kinds[".conf"] {
		t.Errorf("rendered kinds %v: want configs, sockets and a drop-in", kinds)
	}
}
