package recipes

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/internal/config"
)

// TestImportGolden turns each testdata/import/*.conf (the zeo.conf forms
// of the original ZRS documentation and of zc.zrs 3, and the cases that
// must not pass unnoticed) into a site file and compares it with
// NAME.site.yaml (go test ./recipes -update rewrites the golden files).
// A site that zrs-recipe must refuse has NAME.refused, the refusal; any
// other must parse, validate and render. A file the import itself must
// refuse has NAME.error, the error, instead of NAME.site.yaml.
func TestImportGolden(t *testing.T) {
	confs, _ := filepath.Glob(filepath.Join("testdata", "import", "*.conf"))
	if len(confs) < 5 {
		t.Fatalf("found %d zeo.conf samples", len(confs))
	}
	for _, conf := range confs {
		t.Run(filepath.Base(conf), func(t *testing.T) {
			data, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(conf, ".conf")
			got, err := Import(conf, data, "")
			if err != nil {
				checkGolden(t, base+".error", []byte(err.Error()+"\n"))
				checkNoGolden(t, base+".site.yaml", base+".refused")
				return
			}
			checkNoGolden(t, base+".error")
			golden := base + ".site.yaml"
			checkGolden(t, golden, got)
			s, err := ParseSite(golden, got)
			if err != nil {
				checkGolden(t, base+".refused", []byte(err.Error()+"\n"))
				return
			}
			checkNoGolden(t, base+".refused")
			if _, err := Render(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkGolden compares got with the golden file (-update rewrites it).
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (the result was:\n%s)", err, got)
	}
	if !bytes.Equal(got, want) {
		var d bytes.Buffer
		unifiedDiff(&d, golden, "imported", want, got)
		t.Errorf("the result differs from the golden file (go test ./recipes -update if intended):\n%s", d.String())
	}
}

// checkNoGolden fails if a golden file the result does not call for is
// there (-update removes it).
func checkNoGolden(t *testing.T, goldens ...string) {
	t.Helper()
	for _, g := range goldens {
		if *update {
			os.Remove(g)
		}
		if _, err := os.Stat(g); err == nil {
			t.Errorf("%s: there, but the result calls for no such file", g)
		}
	}
}

// What each sample must come out as, beyond the golden text.
func TestImportMeaning(t *testing.T) {
	imp := func(name string) *Part {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("testdata", "import", name+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Import(name+".conf", data, "db")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSite("site.yaml", out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return s.Part("db")
	}
	if p := imp("zrs2-primary"); p.Role != "primary" || p.ReplicationListen() != "5000" || p.Path != "/path/to/data/file" || p.ZEO != nil {
		t.Errorf("zrs2-primary: %+v", p)
	}
	if p := imp("zrs2-secondary"); p.Role != "secondary" || p.ReplicationFrom() != "primary-host:5000" || p.ReplicationListen() != "" {
		t.Errorf("zrs2-secondary: %+v", p)
	}
	// A relative path whose directory the file does not say stays as
	// written, which the recipe refuses: the default DATA_DIR/NAME/Data.fs
	// would be a new, empty database in place of the existing one.
	data, err := os.ReadFile(filepath.Join("testdata", "import", "zrs2-buildout.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Import("zrs2-buildout.conf", data, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSite("site.yaml", out); err == nil || !strings.Contains(err.Error(), `site.yaml:8: parts.db.path: "primary.fs": want an absolute path`) {
		t.Errorf("zrs2-buildout: the relative path was not refused: %v\n%s", err, out)
	}
	// With zdaemon's <runner> daemon true and directory DIR, it is DIR's.
	if p := imp("plone-zeoserver"); p.Role != "primary" || p.ZEOAddress() != "8100" || p.Path != "/srv/plone/zeoserver/var/filestorage/Data.fs" {
		t.Errorf("plone-zeoserver: %+v", p)
	}
	p := imp("zrs3-relay")
	if p.Role != "secondary" || p.ReplicationFrom() != "primary-host:5000" || p.ReplicationListen() != "5000" ||
		p.Replication.KeepAlive.Seconds() != 60 || p.Path != "/var/lib/zodb/secondary.fs" || p.LogLevel != "warn" {
		t.Errorf("zrs3-relay: %+v %+v", p, p.Replication)
	}
	if p.ZEOAddress() != "10.1.2.3:8100" || p.ZEO.TransactionTimeout.Seconds() != 300 || p.ZEO.TLS == nil ||
		p.ZEO.TLS.Certificate != "/etc/zeo/server.pem" || p.ZEO.TLS.Key != "/etc/zeo/server.key" || p.ZEO.TLS.Authenticate != "/etc/zeo/clients" {
		t.Errorf("zrs3-relay zeo: %+v %+v", p.ZEO, p.ZEO.TLS)
	}
	if p := imp("zrs3-primary"); p.Role != "primary" || p.ReplicationListen() != "5000" {
		t.Errorf("zrs3-primary: %+v", p)
	}
}

func TestImportSeveralStorages(t *testing.T) {
	conf := `%import zc.zrs
<zeo>
  address localhost:8100
  msgpack true
</zeo>
<zrs 1>
  replicate-to ./one.sock
  <filestorage>
    path /srv/one.fs
    blob-dir /srv/blobs
  </filestorage>
</zrs>
<zrs catalog>
  replicate-from db1:5001
  <filestorage>
    path /srv/catalog.fs
  </filestorage>
</zrs>
`
	out, err := Import("zeo.conf", []byte(conf), "site")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"  site-1:\n", "  site-catalog:\n",
		"      address: 127.0.0.1:8100\n      msgpack: true\n",
		"      listen: /run/zrs/one.sock\n",
		"# NOTE zeo.conf line 10: blob-dir /srv/blobs: zrs does not replicate blobs",
		"    blob_dir: /srv/blobs\n",
		`# NOTE the ZEO storage was called "catalog": with a zeo section here,`,
		"# NOTE <zeo> (zeo.conf line 2) served this storage too",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("import lacks %q:\n%s", want, text)
		}
	}
	// A database with blobs is not taken without them: the recipe refuses
	// the part until its blob_dir is dealt with; the rest is sound.
	if _, err := ParseSite("site.yaml", out); err == nil || !strings.Contains(err.Error(), "parts.site-1.blob_dir: not yet available") {
		t.Errorf("the part with blobs was accepted: %v\n%s", err, out)
	}
	if _, err := ParseSite("site.yaml", []byte(strings.Replace(text, "    blob_dir: /srv/blobs\n", "", 1))); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

func TestImportErrors(t *testing.T) {
	fs := "<filestorage>\n path /x.fs\n</filestorage>\n"
	for _, tc := range []struct{ name, conf, want string }{
		{"no import", "<zrs>\n replicate-to 1\n" + fs + "</zrs>\n", "zeo.conf:1: <zrs> needs %import zc.zrs before it"},
		{"import after", "<zrs>\n replicate-to 1\n" + fs + "</zrs>\n%import zc.zrs\n", "zeo.conf:1: <zrs> needs %import zc.zrs"},
		{"unclosed", "%import zc.zrs\n<zrs>\n replicate-to 1\n", "zeo.conf:2: <zrs> is never closed"},
		{"wrong close", "%import zc.zrs\n<zrs>\n<filestorage>\n</zrs>\n", "zeo.conf:4: </zrs> does not close <filestorage> (opened on line 3)"},
		{"stray close", "</zeo>\n", "zeo.conf:1: </zeo> closes no open section"},
		{"bad header", "<zeo\n", `zeo.conf:1: malformed section header "<zeo"`},
		{"include", "%include other.conf\n", "zeo.conf:1: %include is not supported"},
		{"unknown directive", "%use x\n", "zeo.conf:1: unknown directive %use"},
		{"undefined", "%import zc.zrs\n<zrs>\n replicate-to $PORT\n" + fs + "</zrs>\n", "zeo.conf:3: $PORT is not %define'd"},
		{"bare dollar", "%import zc.zrs\n<zrs>\n replicate-to 1\n<filestorage>\n path /srv/$ x.fs\n</filestorage>\n</zrs>\n", `zeo.conf:5: '$' not followed by a name in "/srv/$ x.fs": write $$ for a dollar sign`},
		{"dollar at the end", "%define a b$\n", `zeo.conf:1: '$' not followed by a name in "b$"`},
		{"unclosed env", "%define a $(HOME\n", `zeo.conf:1: unclosed $( in "$(HOME"`},
		{"neither address", "%import zc.zrs\n<zrs>\n" + fs + "</zrs>\n", "zeo.conf:2: <zrs> needs replicate-to and/or replicate-from"},
		{"no storage", "%import zc.zrs\n<zrs>\n replicate-to 1\n</zrs>\n", "zeo.conf:2: <zrs> needs a storage section"},
		{"other storage", "%import zc.zrs\n<zrs>\n replicate-to 1\n<mappingstorage>\n</mappingstorage>\n</zrs>\n", "zeo.conf:4: <mappingstorage>: zrs replicates FileStorage only"},
		{"no path", "%import zc.zrs\n<zrs>\n replicate-to 1\n<filestorage>\n</filestorage>\n</zrs>\n", "zeo.conf:4: <filestorage> needs a path"},
		{"twice", "%import zc.zrs\n<zrs>\n replicate-to 1\n replicate-to 2\n" + fs + "</zrs>\n", "zeo.conf:4: replicate-to given twice in <zrs> (first on line 3)"},
		{"bad delay", "%import zc.zrs\n<zrs>\n replicate-from h:1\n keep-alive-delay soon\n" + fs + "</zrs>\n", `zeo.conf:4: keep-alive-delay "soon": want a whole number of seconds`},
		{"bad from", "%import zc.zrs\n<zrs>\n replicate-from h:x\n" + fs + "</zrs>\n", `zeo.conf:3: replicate-from: address "h:x": bad port`},
		{"two zeo", "<zeo>\n</zeo>\n<zeo>\n</zeo>\n", "zeo.conf:3: a second <zeo> section (the first is on line 1)"},
		{"nothing", "<zeo>\n address 8100\n</zeo>\n", "zeo.conf: no storage to import"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import("zeo.conf", []byte(tc.conf), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var ze *ZConfigError
			if !errors.As(err, &ze) && tc.name != "nothing" {
				t.Errorf("%T is no *ZConfigError", err)
			}
		})
	}
}

func TestZConfigSyntax(t *testing.T) {
	zf, err := parseZConfig("x.conf", []byte(`# comment
%define HOST db1
%define addr ${HOST}:5000
<ZRS Main>
  Replicate-From $addr   # trailing comment
  price $$5
  <FileStorage>
	path	/a b/c.fs
  </filestorage>
</zrs>
`))
	if err != nil {
		t.Fatal(err)
	}
	s := zf.Root.Sections[0]
	if s.Type != "zrs" || s.Name != "Main" || s.Line != 4 {
		t.Fatalf("section %+v", s)
	}
	if k, _ := s.key("replicate-from"); k.Value != "db1:5000" || k.Line != 5 {
		t.Errorf("replicate-from: %+v", k)
	}
	if k, _ := s.key("price"); k.Value != "$5" {
		t.Errorf("$$: %+v", k)
	}
	if k, _ := s.Sections[0].key("path"); k.Value != "/a b/c.fs" {
		t.Errorf("tab-separated key: %+v", k)
	}
}

// FuzzImport: any input gives a site file or an error, never a panic; the
// site file is well-formed YAML (it may still need editing to validate,
// which its NOTE comments say).
func FuzzImport(f *testing.F) {
	confs, _ := filepath.Glob(filepath.Join("testdata", "import", "*.conf"))
	for _, c := range confs {
		data, _ := os.ReadFile(c)
		f.Add(data)
	}
	f.Add([]byte("%define a $b\n"))
	f.Add([]byte("<a>\n<b>\n</a>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Import("f.conf", data, "")
		if err != nil {
			return
		}
		if !bytes.HasPrefix(out, []byte("# site.yaml imported")) {
			t.Fatalf("output:\n%s", out)
		}
		if _, err := config.Document("out.yaml", out, "empty"); err != nil {
			t.Fatalf("the import is not YAML: %v\n%s", err, out)
		}
	})
}

// A named storage served by the <zeo> section keeps its name, in lower
// case as ZConfig gives it to runzeo (<zrs Catalog> is served as
// "catalog"): clients that ask for it need no change.
func TestImportKeepsTheStorageName(t *testing.T) {
	conf := "%import zc.zrs\n<zeo>\n  address 8100\n</zeo>\n<zrs Catalog>\n  replicate-to 8101\n" +
		"  <filestorage>\n    path /srv/catalog.fs\n  </filestorage>\n</zrs>\n"
	out, err := Import("zeo.conf", []byte(conf), "main")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSite("site.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p := s.Parts[0]; p.ZEO == nil || p.ZEO.Storage != "catalog" {
		t.Fatalf("part %s zeo %+v; want storage catalog:\n%s", p.Name, p.ZEO, out)
	}
	if strings.Contains(string(out), "NOTE the ZEO storage") {
		t.Errorf("a note about the storage name that zeo.storage keeps:\n%s", out)
	}
}

// Storage names that sanitize to the same part name, and a fall-back name
// taken by another storage ("3"), still give every part its own name.
func TestImportPartNamesAreUnique(t *testing.T) {
	conf := "<zeo>\n  address 8100\n</zeo>\n" +
		"<filestorage 3>\n  path /srv/c.fs\n</filestorage>\n" +
		"<filestorage a/b>\n  path /srv/d.fs\n</filestorage>\n" +
		"<filestorage a_b>\n  path /srv/e.fs\n</filestorage>\n"
	out, err := Import("zeo.conf", []byte(conf), "main")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "  main-") && strings.HasSuffix(l, ":") {
			names[l] = true
		}
	}
	if len(names) != 3 {
		t.Fatalf("part names %v, want 3 different ones:\n%s", names, out)
	}
}

// Only the root logger sets log_level: <eventlog>, or a <logger> with no
// name or named root; a named <logger>'s level is a NOTE (F12).
func TestImportLogLevel(t *testing.T) {
	fs := "<filestorage>\n path /x.fs\n</filestorage>\n"
	for _, tc := range []struct{ conf, want string }{
		{"<logger>\n name root\n level debug\n</logger>\n", "log_level: debug"},
		{"<logger>\n level error\n</logger>\n", "log_level: error"},
		{"<eventlog>\n level info\n</eventlog>\n<logger>\n level warning\n name ZEO\n</logger>\n", "log_level: info"},
		{"<logger>\n level warning\n name ZEO\n</logger>\n", "NOTE zeo.conf line 5: <logger> ZEO level warning: zrs has one log level"},
	} {
		out, err := Import("zeo.conf", []byte(fs+tc.conf), "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: want %q in\n%s", tc.conf, tc.want, out)
		}
	}
}

// Every imported part gets the admin endpoint the documentation uses
// (zrs status /run/zrs/NAME.admin; zrs promote needs it), which the
// recipe accepts without a drop-in: /run/zrs is the service's runtime
// directory (F8).
func TestImportAdmin(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "import", "zrs2-secondary.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Import("zrs2-secondary.conf", data, "replica")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSite("site.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p := s.Part("replica"); p == nil || p.Admin != "/run/zrs/replica.admin" {
		t.Fatalf("no admin /run/zrs/replica.admin:\n%s", out)
	}
	files, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.Contains(f.Path, ".service.d/") && strings.Contains(string(f.Data), "/run/zrs") {
			t.Errorf("a drop-in for the admin socket in /run/zrs:\n%s", f.Data)
		}
		if f.Path == ConfigPath("replica") && !strings.Contains(string(f.Data), "admin: /run/zrs/replica.admin\n") {
			t.Errorf("the daemon config lacks the admin endpoint:\n%s", f.Data)
		}
	}
}
