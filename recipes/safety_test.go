package recipes

import (
	"slices"
	"strings"
	"testing"
)

// A part named "site" would render /etc/zrs/site.yaml, the site file
// itself: refused when the site is read, before anything is written.
func TestPartNamedSiteIsRefused(t *testing.T) {
	_, err := ParseSite("site.yaml", []byte("parts:\n  site:\n    role: primary\n    zeo: {address: 127.0.0.1:8100}\n"))
	if err == nil || !strings.Contains(err.Error(), `parts.site: "site" is reserved`) {
		t.Fatalf("a part named site: %v", err)
	}
}

// Paths that go into a unit's ReadWritePaths= (the data directory, a unix
// admin socket) cannot hold what systemd splits or expands there.
func TestUnitPathsRefuseUnsafeCharacters(t *testing.T) {
	_, err := ParseSite("site.yaml", []byte(`parts:
  main:
    role: primary
    path: "/srv/my data/main/Data.fs"
    admin: "/srv/adm%n/main.admin"
    zeo: {address: 127.0.0.1:8100}
`))
	for _, want := range []string{"site.yaml:4: parts.main.path:", "site.yaml:5: parts.main.admin:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// A run killed after writing its files but before its state file (or its
// systemctl commands) is finished by the next run, commands included.
func TestInterruptedRunIsFinishedWithItsCommands(t *testing.T) {
	site := mustSite(t, "parts:\n  main:\n    role: primary\n    zeo: {address: 127.0.0.1:8100}\n")
	root := t.TempDir()
	files, err := Render(site)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files { // what the interrupted run left
		if err := writeFileAtomic(hostPath(root, f.Path), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, out := apply(t, site, Options{Root: root})
	want := [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", "zrs-zeo@main.socket", "zrs@main.service"}}
	if !slices.EqualFunc(res.After, want, slices.Equal) {
		t.Fatalf("commands after finishing an interrupted run: %q, want %q\n%s", res.After, want, out)
	}
}

// zc.zrs's examples use relative sockets (replicate-to ./primary.sock on
// the primary, replicate-from ./primary.sock on the secondary). Import
// moves both to /run/zrs with a note, so the two ends still meet; a
// relative replication.from written in a site is refused.
func TestImportRelativeReplicateFrom(t *testing.T) {
	conf := `%import zc.zrs
<zeo>
  address 8200
</zeo>
<zrs>
  replicate-from ./primary.sock
  <filestorage>
    path /var/zodb/secondary.fs
  </filestorage>
</zrs>
`
	out, err := Import("zeo.conf", []byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"from: /run/zrs/primary.sock", "NOTE zeo.conf line 6: replicate-from ./primary.sock is relative"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("import lacks %q:\n%s", want, out)
		}
	}
	if _, err := ParseSite("imported", out); err != nil {
		t.Errorf("the imported site does not parse: %v", err)
	}
	_, err = ParseSite("site.yaml", []byte("parts:\n  r:\n    role: secondary\n    replication: {from: ./primary.sock}\n"))
	if err == nil || !strings.Contains(err.Error(), `parts.r.replication.from: "./primary.sock": want an absolute socket path`) {
		t.Errorf("a relative replication.from: %v", err)
	}
}

// A part running as another user keeps its data under /var/lib/zrs (0750
// zrs:zrs) by default, which that user cannot enter: the recipe says so
// and what to do.
func TestOtherUserUnderDefaultDataDirIsNoted(t *testing.T) {
	s := mustSite(t, "parts:\n  main:\n    role: primary\n    user: zodb\n    zeo: {address: 127.0.0.1:8100}\n")
	res, out := apply(t, s, Options{Root: t.TempDir()})
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "usermod -aG zrs zodb") }) {
		t.Fatalf("no note that zodb cannot enter /var/lib/zrs:\n%s", out)
	}
}

// A unix socket path longer than Linux binds is refused when the site is
// read, not when systemd fails to bind it.
func TestLongSocketPathsAreRefused(t *testing.T) {
	long := func(c string) string { return "/run/zrs/" + strings.Repeat(c, 100) + ".sock" }
	_, err := ParseSite("site.yaml", []byte("parts:\n  main:\n    role: primary\n    admin: "+long("a")+"\n    zeo: {address: "+long("z")+"}\n"))
	for want, path := range map[string]string{"parts.main.admin:": long("a"), "parts.main.zeo.address:": long("z")} {
		if err == nil || !strings.Contains(err.Error(), want+` "`+path+`": a unix socket path may be at most 107 bytes`) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
