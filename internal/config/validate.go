package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"time"
	"unicode"

	"github.com/zrs-replication/zrs/internal/netaddr"
)

// nameRE is what an instance name may be: it becomes a file name
// (/etc/zrs/NAME.yaml) and a systemd instance name (zrs@NAME.service).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Validate checks the values and how they fit together; the error is an
// Errors holding every problem found, each naming its key.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.top()
	if c.ZEO != nil {
		v.zeo(c.ZEO)
	}
	if c.Replication != nil {
		v.replication(c.Replication)
	}
	if c.Durability != nil {
		v.durability(c.Durability)
	}
	v.distinctListens()
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

type validator struct {
	c    *Config
	errs Errors
}

// add records a problem with the key at path.
func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.c.file, Line: v.line(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of path's key, or of its nearest parent in the file.
func (v *validator) line(path string) int {
	for path != "" {
		if l, ok := v.c.lines[path]; ok {
			return l
		}
		i := len(path) - 1
		for i >= 0 && path[i] != '.' {
			i--
		}
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) oneOf(path, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(path, "%q: want %s", val, orList(allowed))
}

// addr checks an address the daemon listens on or dials.
func (v *validator) addr(path, val string) {
	a, err := netaddr.Parse(val)
	switch {
	case err != nil:
		v.add(path, "%v", err)
	case a.Network == netaddr.Unix && !filepath.IsAbs(a.Host):
		v.add(path, "%q: want an absolute socket path (%s)", val, relativeWhy)
	}
}

// listen checks an address the daemon listens on: an address too, and
// not port 0, which would listen on a port nobody is told of.
func (v *validator) listen(path, val string) {
	if a, err := netaddr.Parse(val); err == nil && a.Network == netaddr.TCP && a.Port == 0 {
		v.add(path, "%q: port 0 would listen on a port chosen at random, which no client or secondary knows: choose a port", val)
		return
	}
	v.addr(path, val)
}

// relativeWhy says why the file's paths must be absolute.
const relativeWhy = "a relative one would depend on the directory zrs is started in: / under systemd"

// file checks the path of a file or directory the daemon opens.
func (v *validator) file(path, val string) {
	if val != "" && !filepath.IsAbs(val) {
		v.add(path, "%q: want an absolute path (%s)", val, relativeWhy)
	}
}

func (v *validator) top() {
	c := v.c
	switch {
	case c.Name == "":
		v.add("name", "required: the instance name")
	case !nameRE.MatchString(c.Name):
		v.add("name", "%q: want letters, digits, '_', '.' and '-', starting with a letter or digit", c.Name)
	}
	if c.Role == "" {
		v.add("role", "required: primary or secondary")
	} else {
		v.oneOf("role", c.Role, Primary, Secondary)
	}
	if c.Path == "" {
		v.add("path", "required: the Data.fs file")
	}
	v.file("path", c.Path)
	if c.BlobDir != "" {
		v.add("blob_dir", "not yet available in this release (blobs are not replicated yet): leave it empty")
	}
	v.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	if c.Admin != "" {
		v.listen("admin", c.Admin)
	}
	if c.Role == Primary && c.ZEOAddress() == "" && c.ReplicationListen() == "" {
		v.add("role", "a primary needs zeo.address or replication.listen (it would serve nothing)")
	}
	if c.Role == Secondary && c.Durability != nil {
		v.add("durability", "only a primary has a durability section")
	}
	if c.Role == Primary && c.Durability != nil && c.Durability.Level == "sync" && c.ReplicationListen() == "" {
		v.add("durability.level", "sync needs replication.listen: every commit would wait for secondaries that cannot connect, then fail")
	}
	if c.Role == Secondary && c.ReplicationFrom() == "" {
		v.add("replication.from", "required on a secondary: the ADDR of its primary")
	}
}

func (v *validator) zeo(z *ZEO) {
	if z.Address == "" {
		v.add("zeo.address", "required in a zeo section: the ADDR to serve ZEO on")
	} else {
		v.listen("zeo.address", z.Address)
	}
	if z.Storage != "" {
		if err := CheckStorageName(z.Storage); err != nil {
			v.add("zeo.storage", "%v", err)
		}
	}
	if z.TransactionTimeout < 0 {
		v.add("zeo.transaction_timeout", "must not be negative")
	}
	if z.MaxTransactionMB <= 0 || z.MaxTransactionMB > MaxTransactionMB {
		v.add("zeo.max_transaction_mb", "must be between 1 and %d (MiB)", MaxTransactionMB)
	}
	if t := z.TLS; t != nil {
		if t.Certificate == "" {
			v.add("zeo.tls.certificate", "required in a tls section: the server certificate (PEM)")
		}
		if t.Key == "" {
			v.add("zeo.tls.key", "required in a tls section: the private key (PEM) of the certificate")
		}
		v.file("zeo.tls.certificate", t.Certificate)
		v.file("zeo.tls.key", t.Key)
		v.file("zeo.tls.authenticate", t.Authenticate)
	}
}

func (v *validator) replication(r *Replication) {
	secondary := v.c.Role == Secondary
	if r.Listen != "" {
		v.listen("replication.listen", r.Listen)
	}
	if r.From != "" {
		if secondary {
			v.addr("replication.from", r.From)
		} else {
			v.add("replication.from", "only a secondary replicates from a primary")
		}
	}
	if secondary && r.Listen != "" && r.From != "" && netaddr.Same(r.Listen, r.From) {
		v.add("replication.listen", "must differ from replication.from")
	}
	if r.Protocol != "" {
		if secondary {
			v.oneOf("replication.protocol", r.Protocol, "auto", "zrs2", "zrs3")
		} else {
			v.add("replication.protocol", "only a secondary chooses a protocol")
		}
	}
	if r.Compression != nil && !secondary {
		v.add("replication.compression", "only a secondary accepts or refuses compression")
	}
	for _, d := range []struct {
		key  string
		val  time.Duration
		what string
	}{
		{"replication.keep_alive", r.KeepAlive, "only a secondary sends keep-alives"},
		{"replication.read_timeout", r.ReadTimeout, "only a secondary times out its primary"},
		{"replication.idle_timeout", r.IdleTimeout, "only a secondary times out its primary"},
	} {
		switch {
		case d.val < 0:
			v.add(d.key, "must not be negative")
		case d.val > 0 && !secondary:
			v.add(d.key, "%s", d.what)
		}
	}
}

func (v *validator) durability(d *Durability) {
	v.oneOf("durability.level", d.Level, "async", "sync")
	if d.Quorum < 1 {
		v.add("durability.quorum", "must be at least 1")
	}
	if d.SyncTimeout <= 0 {
		v.add("durability.sync_timeout", "must be positive")
	}
	v.oneOf("durability.on_sync_timeout", d.OnSyncTimeout, "fail", "degrade")
}

// Warnings returns what in a valid config is set but changes nothing, as
// errors naming the key (the daemon logs them; zrs-recipe refuses them in
// a site file): quorum, sync_timeout or on_sync_timeout other than their
// defaults with durability level async. The daemon does not refuse them:
// zrs-recipe once rendered such files from its example.
func (c *Config) Warnings() Errors {
	v := validator{c: c}
	if d := c.Durability; d != nil && d.Level == "async" {
		for _, k := range d.SyncOnlySet() {
			v.add("durability."+k, "applies to level: sync only (commits of an async primary wait for no secondary): set level: sync, or leave it out")
		}
	}
	return v.errs
}

// SyncOnlySet returns the keys of d that matter with level sync only and
// differ from their defaults: quorum, sync_timeout, on_sync_timeout, in
// that order.
func (d *Durability) SyncOnlySet() []string {
	var keys []string
	for _, k := range []struct {
		key   string
		moved bool
	}{
		{"quorum", d.Quorum != DefaultQuorum},
		{"sync_timeout", d.SyncTimeout != DefaultSyncTimeout},
		{"on_sync_timeout", d.OnSyncTimeout != DefaultOnSyncTimeout},
	} {
		if k.moved {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// distinctListens refuses two keys that would listen on the same
// endpoint (before anything is opened: bind would blame another process).
func (v *validator) distinctListens() {
	c := v.c
	keys := []string{"zeo.address", "replication.listen", "admin"}
	addrs := []string{c.ZEOAddress(), c.ReplicationListen(), c.Admin}
	for _, p := range netaddr.SameListenPairs(addrs) {
		i, j := p[0], p[1]
		where := keys[i]
		if line := c.lines[keys[i]]; line > 0 {
			where = fmt.Sprintf("%s (line %d)", keys[i], line)
		}
		v.add(keys[j], "%s is also %s: give each its own address", addrs[j], where)
	}
}

// orList formats ["a", "b", "c"] as `a, b or c`.
func orList(s []string) string {
	switch len(s) {
	case 0:
		return "nothing"
	case 1:
		return s[0]
	}
	out := ""
	for i, x := range s[:len(s)-1] {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out + " or " + s[len(s)-1]
}

// CheckStorageName checks a ZEO storage name (zeo.storage, --zeo-storage):
// what ClientStorage's storage argument or a ZEO client config's
// "storage" key says, the name of the server's <filestorage NAME> section
// in a runzeo config.
func CheckStorageName(name string) error {
	if name == "" {
		return fmt.Errorf("must not be empty (ZEO's default is \"1\")")
	}
	if len(name) > 255 {
		return fmt.Errorf("%d bytes; at most 255", len(name))
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return fmt.Errorf("%q: no spaces or control characters (a ZConfig section name has none)", name)
		}
	}
	return nil
}
