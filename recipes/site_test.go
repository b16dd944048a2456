package recipes

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/config"
)

const twoParts = `defaults:
  data_dir: /srv/zrs
  log_level: warn
  durability: {level: sync, quorum: 2}
  zeo: {msgpack: true, storage: zodb}
  replication: {keep_alive: 30s, read_timeout: 5m, compression: false}
parts:
  main:
    role: primary
    zeo: {address: 127.0.0.1:8100}
    replication: {listen: 0.0.0.0:8101}
    admin: /run/zrs/main.admin
  replica:
    role: secondary
    log_level: debug
    replication: {from: db1.example.com:8101}
    zeo:
      address: 127.0.0.1:8200
      msgpack: false
      storage: replica
    user: zodb
`

func TestParseSiteMergesDefaults(t *testing.T) {
	s, err := ParseSite("site.yaml", []byte(twoParts))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Parts) != 2 || s.Parts[0].Name != "main" || s.Parts[1].Name != "replica" {
		t.Fatalf("parts: %v", s.Parts)
	}
	m, r := s.Part("main"), s.Part("replica")
	if m.Path != "/srv/zrs/main/Data.fs" || m.LogLevel != "warn" || m.User != "zrs" || m.DataDir != "/srv/zrs" {
		t.Errorf("main: %+v", m)
	}
	if !m.ZEO.Msgpack || m.ZEO.MaxTransactionMB != config.DefaultMaxTransactionMB || m.ZEO.Storage != "zodb" {
		t.Errorf("main zeo: %+v", m.ZEO)
	}
	if r.ZEO.Msgpack || r.ZEO.Storage != "replica" {
		t.Errorf("replica zeo, its own keys first: %+v", r.ZEO)
	}
	if d := m.Durability; d == nil || d.Level != "sync" || d.Quorum != 2 || d.SyncTimeout != config.DefaultSyncTimeout || d.OnSyncTimeout != "fail" {
		t.Errorf("main durability: %+v", m.Durability)
	}
	if m.Replication.KeepAlive != 0 || m.Replication.ReadTimeout != 0 || m.Replication.Compression != nil {
		t.Errorf("a primary inherited keep_alive, read_timeout or compression: %+v", m.Replication)
	}
	if rr := r.Replication; rr.KeepAlive != 30*time.Second || rr.ReadTimeout != 5*time.Minute || rr.Compression == nil || *rr.Compression {
		t.Errorf("the secondary did not inherit keep_alive, read_timeout and compression: %+v", rr)
	}
	if r.Durability != nil {
		t.Errorf("a secondary inherited durability: %+v", r.Durability)
	}
	if r.Path != "/srv/zrs/replica/Data.fs" || r.LogLevel != "debug" || r.User != "zodb" {
		t.Errorf("replica: %+v", r)
	}
	if r.ZEO.Msgpack {
		t.Error("replica: msgpack: false in the part lost to the default")
	}
	if r.Replication.KeepAlive != 30*time.Second || r.Replication.From != "db1.example.com:8101" {
		t.Errorf("replica replication: %+v", r.Replication)
	}
	if l := r.Line("zeo.msgpack"); l != 19 {
		t.Errorf("line of parts.replica.zeo.msgpack: %d, want 19", l)
	}
	if err := r.DaemonConfig().Validate(); err != nil {
		t.Errorf("the daemon config of a valid part: %v", err)
	}
}

// A primary made async among sync defaults takes none of the defaults'
// sync settings, which its daemon config would refuse with level async;
// its own are still refused.
func TestParseSiteAsyncPartAmongSyncDefaults(t *testing.T) {
	site := strings.Replace(twoParts, "    admin: /run/zrs/main.admin\n", "    admin: /run/zrs/main.admin\n    durability: {level: async}\n", 1)
	s, err := ParseSite("site.yaml", []byte(site))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Part("main")
	if d := m.Durability; d.Level != "async" || d.Quorum != config.DefaultQuorum {
		t.Errorf("main durability: %+v", d)
	}
	if err := m.DaemonConfig().Validate(); err != nil {
		t.Errorf("the daemon config: %v", err)
	}
	site = strings.Replace(site, "{level: async}", "{level: async, quorum: 3}", 1)
	if _, err := ParseSite("site.yaml", []byte(site)); err == nil || !strings.Contains(err.Error(), "durability.quorum: applies to level: sync only") {
		t.Errorf("a part's own quorum with level async: %v", err)
	}
}

func TestParseSiteBuiltInDefaults(t *testing.T) {
	s, err := ParseSite("s.yaml", []byte("parts:\n  p:\n    role: primary\n    replication: {listen: \"8101\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := s.Parts[0]
	if p.Path != "/var/lib/zrs/p/Data.fs" || p.LogLevel != "info" || p.User != "zrs" || p.Durability != nil || p.ZEO != nil {
		t.Errorf("%+v", p)
	}
}

// Every mistake names the file, the line and the key path.
func TestParseSiteErrors(t *testing.T) {
	const ok = "parts:\n  main:\n    role: primary\n    zeo: {address: 127.0.0.1:8100}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown part key", ok + "    zeo_address: 1\n", "site.yaml:5: parts.main.zeo_address: unknown field"},
		{"unknown nested key", "parts:\n  main:\n    role: primary\n    zeo:\n      adress: 1\n", "site.yaml:5: parts.main.zeo.adress: unknown field"},
		{"unknown top key", ok + "part: {}\n", "site.yaml:5: part: unknown field (want defaults or parts)"},
		{"unknown default key", "defaults:\n  colour: red\n" + ok, "site.yaml:2: defaults.colour: unknown field"},
		{"repeated part", ok + "  main:\n    role: primary\n", "site.yaml:5: parts.main: repeated key (first on line 2)"},
		{"name field", ok + "    name: other\n", "site.yaml:5: parts.main.name: a part's name is its key under parts"},
		{"no parts", "defaults: {log_level: info}\n", "site.yaml:1: parts: required"},
		{"empty parts", "parts: {}\n", "site.yaml:1: parts: required"},
		{"empty file", "", "site.yaml: empty site file"},
		{"a list", "- a\n", "site.yaml:1: want a mapping of keys to values (the file), got a list"},
		{"bad duration", ok + "    replication: {keep_alive: soon}\n", `site.yaml:5: parts.main.replication.keep_alive: want a duration with a unit`},
		{"bad bool", ok[:len(ok)-2] + ", msgpack: maybe}\n", `site.yaml:4: parts.main.zeo.msgpack: want true or false, got "maybe"`},
		{"alias", "defaults: &d {log_level: info}\nparts:\n  main: *d\n", "site.yaml:3: parts.main: YAML aliases are not supported"},
		{"two documents", ok + "---\nparts: {}\n", "site.yaml:5: more than one YAML document"},
		{"bad role", strings.Replace(ok, "primary", "master", 1), `site.yaml:3: parts.main.role: "master": want primary or secondary`},
		{"no role", "parts:\n  main:\n    zeo: {address: 127.0.0.1:8100}\n", "site.yaml:2: parts.main.role: required"},
		{"bad name", strings.Replace(ok, "main:", "a b:", 1), `site.yaml:2: parts.a b.name: "a b": want letters`},
		{"secondary without from", "parts:\n  r:\n    role: secondary\n    zeo: {address: 8200}\n", "site.yaml:2: parts.r.replication.from: required on a secondary"},
		{"primary serving nothing", "parts:\n  p:\n    role: primary\n", "site.yaml:3: parts.p.role: a primary needs zeo.address or replication.listen"},
		{"durability on a secondary", "parts:\n  r:\n    role: secondary\n    replication: {from: db:1}\n    durability: {level: sync}\n", "site.yaml:5: parts.r.durability: only a primary"},
		{"bad inherited value", "defaults:\n  durability: {level: eventually}\n" + ok, `site.yaml:2: defaults.durability.level: "eventually": want async or sync (inherited by part main)`},
		{"address in defaults", "defaults:\n  zeo: {address: 8100}\n" + ok, "site.yaml:2: defaults.zeo.address: belongs to one part"},
		{"role in defaults", "defaults:\n  role: primary\n" + ok, "site.yaml:2: defaults.role: belongs to one part"},
		{"relative data_dir", "defaults:\n  data_dir: data\n" + ok, `site.yaml:2: defaults.data_dir: "data": want an absolute directory`},
		{"relative path", ok + "    path: Data.fs\n", `site.yaml:5: parts.main.path: "Data.fs": want an absolute path`},
		{"bad user", ok + "    user: Root!\n", `site.yaml:5: parts.main.user: "Root!": want a system user name`},
		{"host name", strings.Replace(ok, "127.0.0.1:8100", "localhost:8100", 1), `site.yaml:4: parts.main.zeo.address: "localhost:8100": systemd listens on IP addresses, not host names`},
		{"port 0", strings.Replace(ok, "127.0.0.1:8100", "127.0.0.1:0", 1), `site.yaml:4: parts.main.zeo.address: "127.0.0.1:0": port 0 would listen on a port chosen at random`},
		{"relative socket", strings.Replace(ok, "127.0.0.1:8100", "./zeo.sock", 1), `site.yaml:4: parts.main.zeo.address: "./zeo.sock": want an absolute socket path`},
		{"blob_dir", ok + "    blob_dir: /srv/blobs\n", "site.yaml:5: parts.main.blob_dir: not yet available"},
		{"relative tls", ok[:len(ok)-2] + ", tls: {certificate: c.pem, key: /k}}\n", `site.yaml:4: parts.main.zeo.tls.certificate: "c.pem": want an absolute path`},
		{"same port", ok + "  other:\n    role: primary\n    replication: {listen: \"8100\"}\n", "site.yaml:7: parts.other.replication.listen: listens where parts.main.zeo.address does (line 4)"},
		{"same port in a part", "parts:\n  main:\n    role: primary\n    zeo: {address: 127.0.0.1:8100}\n    admin: 127.0.0.1:8100\n", "site.yaml:5: parts.main.admin: 127.0.0.1:8100 is also zeo.address: give each its own address"},
		{"same socket", "parts:\n  a:\n    role: primary\n    zeo: {address: /run/zrs/z}\n  b:\n    role: primary\n    zeo: {address: /run/zrs/z}\n", "site.yaml:7: parts.b.zeo.address: listens where parts.a.zeo.address does (line 4)"},
		{"same data file", ok + "    path: /srv/Data.fs\n  b:\n    role: primary\n    path: /srv/Data.fs\n    zeo: {address: 127.0.0.1:8200}\n", "site.yaml:8: parts.b.path: /srv/Data.fs is also the data file of part main"},
		{"listen is from", "parts:\n  r:\n    role: secondary\n    replication: {from: 10.0.0.1:8101, listen: 10.0.0.1:8101}\n", "site.yaml:4: parts.r.replication.listen: must differ from replication.from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSite("site.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%T is no *Error", err)
			}
		})
	}
}

// Validation reports every problem, not just the first.
func TestParseSiteReportsEveryProblem(t *testing.T) {
	_, err := ParseSite("site.yaml", []byte("parts:\n  a:\n    role: primary\n  b:\n    role: secondary\n"))
	es := config.AsErrors(err)
	if len(es) != 2 || es[0].Field != "parts.a.role" || es[1].Field != "parts.b.replication.from" {
		t.Fatalf("errors: %v", err)
	}
}

func TestListenStream(t *testing.T) {
	for in, want := range map[string]string{
		"8100":               "8100",
		"127.0.0.1:8100":     "127.0.0.1:8100",
		"0.0.0.0:8100":       "0.0.0.0:8100",
		"[::1]:8100":         "[::1]:8100",
		"[::]:8100":          "[::]:8100",
		"/run/zrs/a.zeo":     "/run/zrs/a.zeo",
		"/run/zrs//b/../a.s": "/run/zrs/a.s",
	} {
		if got, err := ListenStream(in); err != nil || got != want {
			t.Errorf("ListenStream(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "db:8100", "8100x", "/run/a b", "fe80::1%eth0", "[fe80::1%eth0]:80", "./x"} {
		if got, err := ListenStream(in); err == nil {
			t.Errorf("ListenStream(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzParseSite: any input gives a site or an error, never a panic; a
// site that parses also renders.
func FuzzParseSite(f *testing.F) {
	f.Add([]byte(twoParts))
	f.Add([]byte("parts:\n  p:\n    role: primary\n    replication: {listen: \"8101\"}\n"))
	f.Add([]byte("defaults: &d {log_level: info}\nparts:\n  main: *d\n"))
	f.Add([]byte("parts:\n  a:\n    role: primary\n    zeo: {address: /run/zrs/z}\n"))
	f.Add([]byte("parts: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSite("f.yaml", data)
		if err != nil {
			return
		}
		if _, err := Render(s); err != nil {
			t.Fatalf("a valid site does not render: %v\n%s", err, data)
		}
	})
}
