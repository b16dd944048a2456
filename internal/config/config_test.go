package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// full sets every field of the contract.
const full = `name: main
role: primary
path: /var/lib/zrs/main/Data.fs
log_level: debug
admin: /run/zrs/main.admin
zeo:
  address: 127.0.0.1:8100
  storage: catalog
  msgpack: true
  transaction_timeout: 30s
  max_transaction_mb: 64
  tls:
    certificate: /etc/zrs/tls/main.pem
    key: /etc/zrs/tls/main.key
    authenticate: /etc/zrs/tls/clients-ca.pem
replication:
  listen: 127.0.0.1:8101
durability:
  level: sync
  quorum: 2
  sync_timeout: 10s
  on_sync_timeout: degrade
`

func TestParseEveryField(t *testing.T) {
	c, err := Parse("main.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Name: "main", Role: Primary, Path: "/var/lib/zrs/main/Data.fs", LogLevel: "debug",
		Admin: "/run/zrs/main.admin",
		ZEO: &ZEO{Address: "127.0.0.1:8100", Storage: "catalog", Msgpack: true, TransactionTimeout: 30 * time.Second,
			MaxTransactionMB: 64, TLS: &TLS{Certificate: "/etc/zrs/tls/main.pem",
				Key: "/etc/zrs/tls/main.key", Authenticate: "/etc/zrs/tls/clients-ca.pem"}},
		Replication: &Replication{Listen: "127.0.0.1:8101"},
		Durability:  &Durability{Level: "sync", Quorum: 2, SyncTimeout: 10 * time.Second, OnSyncTimeout: "degrade"},
	}
	assertSame(t, c, want)
	if c.File() != "main.yaml" || c.lines["zeo.tls.key"] != 14 {
		t.Errorf("file %q, line of zeo.tls.key %d: want main.yaml, 14", c.File(), c.lines["zeo.tls.key"])
	}
}

func TestParseSecondaryFields(t *testing.T) {
	c, err := Parse("replica.yaml", []byte(`name: replica
role: secondary
path: /var/lib/zrs/replica/Data.fs
blob_dir: ""
replication:
  from: db1.example.com:8101
  listen: /run/zrs/replica.sock
  protocol: zrs3
  keep_alive: 1m30s
  read_timeout: 2m
  idle_timeout: 9s
zeo: {address: "8200"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Name: "replica", Role: Secondary, Path: "/var/lib/zrs/replica/Data.fs", LogLevel: "info",
		ZEO: NewZEO("8200"),
		Replication: &Replication{From: "db1.example.com:8101", Listen: "/run/zrs/replica.sock", Protocol: "zrs3", KeepAlive: 90 * time.Second,
			ReadTimeout: 2 * time.Minute, IdleTimeout: 9 * time.Second}}
	assertSame(t, c, want)
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("d.yaml", []byte("name: d\nrole: primary\npath: /d.fs\nzeo:\n  address: 8100\ndurability: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "info" || c.ZEO.MaxTransactionMB != 1024 || c.ZEO.TransactionTimeout != 0 || c.ZEO.Msgpack || c.ZEO.TLS != nil {
		t.Errorf("defaults: %+v %+v", c, c.ZEO)
	}
	if *c.Durability != *NewDurability() || c.Durability.Level != "async" || c.Durability.Quorum != 1 || c.Durability.OnSyncTimeout != "fail" {
		t.Errorf("durability defaults: %+v", c.Durability)
	}
	if c.Replication != nil || c.ReplicationListen() != "" || c.ReplicationFrom() != "" || c.ZEOAddress() != "8100" {
		t.Errorf("sections: %+v", c)
	}
}

// base is a valid secondary the error cases edit.
const base = `name: main
role: secondary
path: /srv/Data.fs
replication:
  from: db1:8101
`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top key", base + "colour: blue\n", "main.yaml:6: colour: unknown field"},
		{"unknown nested key", base + "zeo:\n  address: 8100\n  adress: 8100\n", "main.yaml:8: zeo.adress: unknown field"},
		{"unknown tls key", base + "zeo:\n  address: 8100\n  tls:\n    cert: x\n", "main.yaml:9: zeo.tls.cert: unknown field"},
		{"repeated key", base + "name: again\n", "main.yaml:6: name: repeated key (first on line 1)"},
		{"bad role", strings.Replace(base, "secondary", "master", 1), `main.yaml:2: role: "master": want primary or secondary`},
		{"missing role", strings.Replace(base, "role: secondary\n", "", 1), "main.yaml: role: required: primary or secondary"},
		{"missing name", strings.Replace(base, "name: main\n", "", 1), "main.yaml: name: required"},
		{"bad name", strings.Replace(base, "name: main", "name: a/b", 1), `main.yaml:1: name: "a/b": want letters`},
		{"missing path", strings.Replace(base, "path: /srv/Data.fs\n", "", 1), "main.yaml: path: required"},
		{"bad log level", base + "log_level: loud\n", `main.yaml:6: log_level: "loud": want debug, info, warn or error`},
		{"bad protocol", base + "  protocol: zrs4\n", `main.yaml:6: replication.protocol: "zrs4": want auto, zrs2 or zrs3`},
		{"bad from addr", strings.Replace(base, "db1:8101", "db1:99999", 1), `main.yaml:5: replication.from: address "db1:99999": bad port "99999"`},
		{"bad zeo addr", base + "zeo: {address: 'host:'}\n", `main.yaml:6: zeo.address: address "host:": bad port`},
		{"bad admin addr", base + "admin: nope\n", `main.yaml:6: admin: address "nope": bad port "nope"`},
		{"bad listen addr", base + "  listen: :x\n", `main.yaml:6: replication.listen: address ":x": bad port "x"`},
		{"listen is from", base + "  listen: db1:8101\n", "main.yaml:6: replication.listen: must differ from replication.from"},
		{"secondary without from", "name: r\nrole: secondary\npath: /x\nzeo: {address: 8100}\n", "main.yaml: replication.from: required on a secondary"},
		{"secondary with empty replication", "name: r\nrole: secondary\npath: /x\nreplication:\n", "main.yaml:4: replication.from: required on a secondary"},
		{"durability on a secondary", base + "durability: {level: sync}\n", "main.yaml:6: durability: only a primary has a durability section"},
		{"from on a primary", "name: p\nrole: primary\npath: /x\nreplication: {listen: 1, from: 2}\n", "main.yaml:4: replication.from: only a secondary replicates from a primary"},
		{"protocol on a primary", "name: p\nrole: primary\npath: /x\nreplication: {listen: 1, protocol: zrs3}\n", "main.yaml:4: replication.protocol: only a secondary"},
		{"read_timeout on a primary", "name: p\nrole: primary\npath: /x\nreplication: {listen: 1, read_timeout: 5s}\n", "main.yaml:4: replication.read_timeout: only a secondary"},
		{"negative idle_timeout", base + "  idle_timeout: -1s\n", "main.yaml:6: replication.idle_timeout: must not be negative"},
		{"compression on a primary", "name: p\nrole: primary\npath: /x\nreplication: {listen: 1, compression: false}\n", "main.yaml:4: replication.compression: only a secondary"},
		{"bad compression", base + "  compression: maybe\n", `main.yaml:6: replication.compression: want true or false, got "maybe"`},
		{"keep_alive on a primary", "name: p\nrole: primary\npath: /x\nreplication: {listen: 1, keep_alive: 5s}\n", "main.yaml:4: replication.keep_alive: only a secondary"},
		{"primary serving nothing", "name: p\nrole: primary\npath: /x\n", "main.yaml:2: role: a primary needs zeo.address or replication.listen"},
		{"blob_dir", base + "blob_dir: /srv/blobs\n", "main.yaml:6: blob_dir: not yet available in this release"},
		{"zeo without address", base + "zeo: {msgpack: true}\n", "main.yaml:6: zeo.address: required in a zeo section"},
		{"tls without key", base + "zeo:\n  address: 1\n  tls: {certificate: c}\n", "main.yaml:8: zeo.tls.key: required in a tls section"},
		{"storage name with a space", base + "zeo: {address: 1, storage: \"my db\"}\n", `main.yaml:6: zeo.storage: "my db": no spaces or control characters (a ZConfig section name has none)`},
		{"max txn zero", base + "zeo: {address: 1, max_transaction_mb: 0}\n", "main.yaml:6: zeo.max_transaction_mb: must be between 1 and 1048576 (MiB)"},
		{"max txn huge", base + "zeo: {address: 1, max_transaction_mb: 17592186044417}\n", "main.yaml:6: zeo.max_transaction_mb: must be between 1 and 1048576 (MiB)"},
		{"negative timeout", base + "zeo: {address: 1, transaction_timeout: -1s}\n", "main.yaml:6: zeo.transaction_timeout: must not be negative"},
		{"bad duration", base + "  keep_alive: soon\n", `main.yaml:6: replication.keep_alive: want a duration with a unit, such as "0s", "30s" or "1m30s", got "soon"`},
		{"duration without unit", base + "  keep_alive: 5\n", `main.yaml:6: replication.keep_alive: want a duration with a unit`},
		{"bad bool", base + "zeo: {address: 1, msgpack: maybe}\n", `main.yaml:6: zeo.msgpack: want true or false, got "maybe"`},
		{"bad int", base + "zeo: {address: 1, max_transaction_mb: lots}\n", `main.yaml:6: zeo.max_transaction_mb: want an integer, got "lots"`},
		{"string as list", base + "admin: [a, b]\n", "main.yaml:6: admin: want a string, got a list"},
		{"section as string", base + "zeo: 8100\n", `main.yaml:6: zeo: want a mapping of keys to values (a section), got "8100"`},
		{"bad quorum", "name: p\nrole: primary\npath: /x\nzeo: {address: 1}\ndurability: {quorum: 0}\n", "main.yaml:5: durability.quorum: must be at least 1"},
		{"bad level", "name: p\nrole: primary\npath: /x\nzeo: {address: 1}\ndurability:\n  level: eventually\n", `main.yaml:6: durability.level: "eventually": want async or sync`},
		{"bad on_sync_timeout", "name: p\nrole: primary\npath: /x\nzeo: {address: 1}\ndurability: {on_sync_timeout: retry}\n", `durability.on_sync_timeout: "retry": want fail or degrade`},
		{"sync without replication", "name: p\nrole: primary\npath: /x\nzeo: {address: 1}\ndurability:\n  level: sync\n", "main.yaml:6: durability.level: sync needs replication.listen"},
		{"bad sync_timeout", "name: p\nrole: primary\npath: /x\nzeo: {address: 1}\ndurability: {sync_timeout: 0s}\n", `durability.sync_timeout: must be positive`},
		{"relative path", strings.Replace(base, "/srv/Data.fs", "srv/Data.fs", 1), `main.yaml:3: path: "srv/Data.fs": want an absolute path (a relative one would depend on the directory zrs is started in: / under systemd)`},
		{"relative tls file", base + "zeo:\n  address: 1\n  tls: {certificate: /c.pem, key: /k.pem, authenticate: cas/}\n", `main.yaml:8: zeo.tls.authenticate: "cas/": want an absolute path`},
		{"relative admin socket", base + "admin: run/main.admin\n", `main.yaml:6: admin: "run/main.admin": want an absolute socket path`},
		{"relative from socket", strings.Replace(base, "db1:8101", "./p.sock", 1), `main.yaml:5: replication.from: "./p.sock": want an absolute socket path`},
		{"zeo port 0", base + "zeo: {address: '127.0.0.1:0'}\n", `main.yaml:6: zeo.address: "127.0.0.1:0": port 0 would listen on a port chosen at random`},
		{"listen port 0", base + "  listen: 0\n", `main.yaml:6: replication.listen: "0": port 0`},
		{"admin port 0", base + "admin: localhost:0\n", `main.yaml:6: admin: "localhost:0": port 0`},
		{"empty file", "", "main.yaml: empty config"},
		{"not a mapping", "- a\n- b\n", "main.yaml:1: want a mapping of keys to values (the file), got a list"},
		{"two documents", base + "---\nname: x\n", "main.yaml:6: more than one YAML document"},
		{"bad yaml", "name: [\n", "main.yaml:"},
		{"alias", strings.Replace(base, "name: main", "name: &n main", 1) + "admin: *n\n", "main.yaml:6: admin: YAML aliases are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("main.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
			if es := AsErrors(err); len(es) == 0 {
				t.Fatalf("error %T %v holds no *Error", err, err)
			}
		})
	}
}

// Sync settings with level async change nothing: at their defaults they
// pass (a rendered config writes every key); otherwise they are warnings,
// not errors, since zrs-recipe once rendered them from its example (a
// package upgrade keeps those files, and the restart must not fail).
func TestAsyncSyncSettingsAreWarnings(t *testing.T) {
	c, err := Parse("m.yaml", []byte("name: p\nrole: primary\npath: /x\nzeo: {address: 1}\n"+
		"durability: {level: async, quorum: 1, sync_timeout: 5s, on_sync_timeout: fail}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings for the defaults: %v", w)
	}
	const previousRecipe = `name: main
role: primary
path: /var/lib/zrs/main/Data.fs
log_level: info
admin: /run/zrs/main.admin
zeo:
  address: 127.0.0.1:8100
replication:
  listen: 0.0.0.0:8101
durability:
  level: async
  quorum: 2
  sync_timeout: 10s
  on_sync_timeout: degrade
`
	c, err = Parse("/etc/zrs/main.yaml", []byte(previousRecipe))
	if err != nil {
		t.Fatalf("a config an earlier zrs-recipe rendered is refused: %v", err)
	}
	want := []string{
		"/etc/zrs/main.yaml:12: durability.quorum: applies to level: sync only",
		"/etc/zrs/main.yaml:13: durability.sync_timeout: applies to level: sync only",
		"/etc/zrs/main.yaml:14: durability.on_sync_timeout: applies to level: sync only",
	}
	w := c.Warnings()
	if len(w) != len(want) {
		t.Fatalf("warnings %v, want %d", w, len(want))
	}
	for i, e := range w {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("warning %q, want it to start with %q", e, want[i])
		}
	}
	c, _ = Parse("s.yaml", []byte("name: p\nrole: primary\npath: /x\nreplication: {listen: 1}\ndurability: {level: sync, quorum: 2}\n"))
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings with level sync: %v", w)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Parse("x.yaml", []byte("name: x\nrole: secondary\npath: /p\nlog_level: loud\nblob_dir: b\n"))
	es := AsErrors(err)
	var fields []string
	for _, e := range es {
		fields = append(fields, e.Field)
	}
	if got, want := strings.Join(fields, " "), "blob_dir log_level replication.from"; got != want {
		t.Errorf("fields %q, want %q (error %v)", got, want, err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.File != "x.yaml" || ce.Line != 5 {
		t.Errorf("errors.As: %+v", ce)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := &Config{Name: "n", Role: Secondary, Path: "/p", LogLevel: "info"}
	err := c.Validate()
	if err == nil || err.Error() != "replication.from: required on a secondary: the ADDR of its primary" {
		t.Errorf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "main.yaml")
	if err := os.WriteFile(p, []byte(full+"zeo2: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || err.Error() != p+":23: zeo2: unknown field" {
		t.Errorf("got %v", err)
	}
	if _, err := Load(p + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRenderRoundTrip(t *testing.T) {
	for _, src := range []string{full, base, base + "  listen: 0.0.0.0:8102\n  keep_alive: 10s\n  read_timeout: 1m\nzeo: {address: '8100'}\nadmin: 9000\n",
		base + "  compression: false\n", base + "  compression: true\n"} {
		c, err := Parse("a.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Render(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse("b.yaml", out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		assertSame(t, c2, c)
	}
}

func TestRenderText(t *testing.T) {
	c := &Config{Name: "main", Role: Primary, Path: "/var/lib/zrs/main/Data.fs", LogLevel: "info",
		ZEO: NewZEO("8100"), Replication: &Replication{Listen: "0.0.0.0:8101"}, Durability: NewDurability()}
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `name: main
role: primary
path: /var/lib/zrs/main/Data.fs
log_level: info
zeo:
  address: "8100"
  msgpack: false
  transaction_timeout: 0s
  max_transaction_mb: 1024
replication:
  listen: 0.0.0.0:8101
durability:
  level: async
  quorum: 1
  sync_timeout: 5s
  on_sync_timeout: fail
`
	if string(out) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", out, want)
	}
	c.BlobDir = "x"
	if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "blob_dir") {
		t.Errorf("render of an invalid config: %v", err)
	}
}

// assertSame compares two configs, ignoring where they were parsed from.
func assertSame(t *testing.T, got, want *Config) {
	t.Helper()
	g, w := *got, *want
	g.file, g.lines, w.file, w.lines = "", nil, "", nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("config\n got %s\nwant %s", dump(&g), dump(&w))
	}
}

func dump(c *Config) string {
	b, err := Render(c)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
