package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCmd(args...)
		for _, want := range []string{"Usage: zrs-recipe", "installed.json", "--dry-run", "--systemctl", "zrs-zeo@NAME.socket", "no changes", "zrs-recipe import"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("%v: code %d, stdout lacks %q", args, code, want)
			}
		}
	}
	code, out, _ := runCmd("import", "--help")
	if code != 0 || !strings.Contains(out, "replicate-to becomes replication.listen") || !strings.Contains(out, "-name NAME") {
		t.Errorf("import --help: code %d\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"site.yaml"}, `unexpected argument "site.yaml"`},
		{[]string{"--systemctl", "--root", "/tmp"}, "--systemctl manages the running system: it needs --root /"},
		{[]string{"import"}, "import takes one zeo.conf file"},
		{[]string{"version", "x"}, "version takes no arguments"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := runCmd("version"); code != 0 || out != "zrs-recipe "+versionString()+"\n" || versionString() == "" {
		t.Errorf("code %d, %q, want the version %q", code, out, versionString())
	}
}

func TestRenderTwiceThenRemove(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	two := "parts:\n  main:\n    role: primary\n    zeo: {address: 127.0.0.1:8100}\n" +
		"  replica:\n    role: secondary\n    replication: {from: 127.0.0.1:9}\n    zeo: {address: 127.0.0.1:8200}\n"
	os.WriteFile(site, []byte(two), 0o644)
	code, out, errs := runCmd("--site", site, "--root", root)
	if code != 0 || !strings.Contains(out, "created  /etc/zrs/main.yaml") ||
		!strings.Contains(out, "systemctl enable --now zrs-zeo@replica.socket zrs@replica.service") {
		t.Fatalf("first run: code %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("--site", site, "--root", root)
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second run: code %d\n%s", code, out)
	}
	os.WriteFile(site, []byte(two[:strings.Index(two, "  replica:")]), 0o644)
	code, out, _ = runCmd("--site", site, "--root", root, "--dry-run")
	if code != 0 || !strings.Contains(out, "+++ /dev/null") || !strings.Contains(out, "nothing written") {
		t.Fatalf("dry run: code %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/zrs/replica.yaml")); err != nil {
		t.Fatal("the dry run removed a file")
	}
	code, out, _ = runCmd("--site", site, "--root", root)
	if code != 0 || !strings.Contains(out, "removed  /etc/zrs/replica.yaml") {
		t.Fatalf("removal: code %d\n%s", code, out)
	}
	// A hand edit: refused, exit 1; a dry run shows the diff all the same.
	cfg := filepath.Join(root, "etc/zrs/main.yaml")
	os.WriteFile(cfg, []byte("# mine\n"), 0o644)
	os.WriteFile(site, []byte(strings.Replace(two[:strings.Index(two, "  replica:")], "8100", "8101", 1)), 0o644)
	code, out, errs = runCmd("--site", site, "--root", root, "--dry-run")
	if code != 1 || !strings.Contains(out, "-# mine\n") || !strings.Contains(out, "edited by hand since zrs-recipe wrote it (--force)") ||
		!strings.Contains(errs, "pass --force to update it anyway") {
		t.Fatalf("dry run over a hand edit: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd("--site", site, "--root", root)
	if code != 1 || out != "" || !strings.Contains(errs, "zrs-recipe changed nothing:") {
		t.Fatalf("run over a hand edit: code %d\n%s%s", code, out, errs)
	}
	if code, _, _ = runCmd("--site", site, "--root", root, "--force"); code != 0 {
		t.Fatalf("--force: code %d", code)
	}
	// A bad site: exit 1 with file, line and key.
	os.WriteFile(site, []byte("parts:\n  main:\n    role: primary\n    zeo: {adress: 1}\n"), 0o644)
	code, _, errs = runCmd("--site", site, "--root", root)
	if code != 1 || !strings.Contains(errs, site+":4: parts.main.zeo.adress: unknown field") {
		t.Fatalf("bad site: code %d, stderr %q", code, errs)
	}
}

func TestImport(t *testing.T) {
	conf := filepath.Join("..", "..", "recipes", "testdata", "import", "zrs3-relay.conf")
	want, err := os.ReadFile(filepath.Join("..", "..", "recipes", "testdata", "import", "zrs3-relay.site.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("import", conf)
	if code != 0 || out != string(want) {
		t.Fatalf("code %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	code, out, _ = runCmd("import", "--name", "db", conf)
	if code != 0 || !strings.Contains(out, "\n  db:\n") {
		t.Fatalf("--name: code %d\n%s", code, out)
	}
	// An import that needs editing: printed, and exit 1 saying why.
	dir := t.TempDir()
	bad := filepath.Join(dir, "zeo.conf")
	os.WriteFile(bad, []byte("%import zc.zrs\n<zrs>\n replicate-to db.example.com:5000\n<filestorage>\n path /x.fs\n</filestorage>\n</zrs>\n"), 0o644)
	code, out, errs = runCmd("import", bad)
	if code != 1 || !strings.Contains(out, "listen: db.example.com:5000") || !strings.Contains(errs, "needs editing before zrs-recipe accepts it (see its NOTE comments)") || !strings.Contains(errs, "not host names") {
		t.Fatalf("code %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	// One that has no NOTE to see: the message points at the lines.
	code, _, errs = runCmd("import", "--name", "site", filepath.Join("..", "..", "recipes", "testdata", "import", "zrs3-primary.conf"))
	if code != 1 || !strings.Contains(errs, "needs editing before zrs-recipe accepts it (edit the lines named below):") || strings.Contains(errs, "NOTE") {
		t.Fatalf("no NOTE: code %d, stderr %q", code, errs)
	}
	// The keep-alive of a primary is dropped with a NOTE, not refused.
	code, out, errs = runCmd("import", filepath.Join("..", "..", "recipes", "testdata", "import", "keepalive-primary.conf"))
	if code != 0 || strings.Contains(out, "keep_alive") || errs != "" {
		t.Fatalf("keep-alive on a primary: code %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	code, _, errs = runCmd("import", filepath.Join(dir, "missing.conf"))
	if code != 1 || !strings.Contains(errs, "missing.conf") {
		t.Fatalf("missing file: code %d, %q", code, errs)
	}
}

// A bad flag is one line and a pointer to --help; a missing site file
// says where the example is.
func TestBadFlagAndMissingSite(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"--bogus"}, &out, &errs); code != 2 || errs.String() != "zrs-recipe: flag provided but not defined: -bogus\nRun \"zrs-recipe --help\" for usage.\n" {
		t.Errorf("--bogus: exit %d, stderr:\n%s", code, errs.String())
	}
	errs.Reset()
	site := filepath.Join(t.TempDir(), "site.yaml")
	want := "zrs-recipe: no site file at " + site + ": copy /etc/zrs/site.yaml.example there and edit it (or give --site FILE)\n"
	if code := run([]string{"--site", site, "--root", t.TempDir(), "--dry-run"}, &out, &errs); code != 1 || errs.String() != want {
		t.Errorf("missing site: exit %d, stderr %q, want %q", code, errs.String(), want)
	}
}
