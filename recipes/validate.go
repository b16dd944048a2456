package recipes

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// userRE is what a user name may be (the portable subset useradd and
// systemd-sysusers accept).
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// perPart are the keys that name one part's own resources: a defaults
// section may not set them.
var perPart = []string{"role", "path", "admin", "blob_dir", "zeo.address", "replication.listen", "replication.from"}

// siteValidator collects every problem of a site, each at its line.
type siteValidator struct {
	file string
	dflt *Part
	errs Errors
}

func (v *siteValidator) add(line int, field, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// checkDefaults checks the defaults section d.
func (v *siteValidator) checkDefaults(d *Part) {
	v.dflt = d
	for _, k := range perPart {
		if l, ok := d.lines[k]; ok {
			v.add(l, "defaults."+k, "belongs to one part: set it under parts.NAME")
		}
	}
	v.dirAndUser(d, "defaults.")
}

// dirAndUser checks the two keys only the recipe reads.
func (v *siteValidator) dirAndUser(p *Part, prefix string) {
	if l, ok := p.lines["data_dir"]; ok && !path.IsAbs(p.DataDir) {
		v.add(l, prefix+"data_dir", "%q: want an absolute directory", p.DataDir)
	}
	if l, ok := p.lines["user"]; ok && !userRE.MatchString(p.User) {
		v.add(l, prefix+"user", "%q: want a system user name (lower-case letters, digits, '_' and '-')", p.User)
	}
}

// part checks one merged part: everything the daemon config checks, and
// what a systemd unit needs on top.
func (v *siteValidator) part(p *Part) {
	prefix := "parts." + p.Name + "."
	if p.Name == reservedName {
		v.add(p.line, "parts."+p.Name, "%q is reserved: its config would be %s, the site file itself; choose another name", p.Name, ConfigPath(p.Name))
	}
	v.dirAndUser(p, prefix)
	// refused: the keys the daemon config's checks refuse; the checks for
	// socket units below skip them (a relative socket or port 0 would
	// otherwise be reported twice, in two wordings).
	refused := map[string]bool{}
	for _, e := range config.AsErrors(p.DaemonConfig().Validate()) {
		v.configError(p, e)
		refused[e.Field] = true
	}
	// What the daemon only warns of (it runs files earlier versions of
	// this recipe rendered) is refused in the site file, before it runs.
	for _, e := range p.DaemonConfig().Warnings() {
		v.configError(p, e)
	}
	// A relative path, TLS file or replication.from socket is refused by
	// the daemon config's own checks above.
	// The data directory and a unix admin socket go into the drop-in's
	// ReadWritePaths=, which systemd splits at spaces and expands '%' in.
	v.unitPath(p, "path", p.Path)
	if a, err := netaddr.Parse(p.Admin); err == nil && a.Network == netaddr.Unix && !refused["admin"] {
		if err := socketPath(p.Admin, a.Host); err != nil {
			v.add(p.Line("admin"), prefix+"admin", "%v", err)
		}
		v.unitPath(p, "admin", a.Host)
	}
	if p.ZEO != nil && p.ZEO.Address != "" && !refused["zeo.address"] {
		v.listen(p, "zeo.address", p.ZEO.Address)
	}
	if l := p.ReplicationListen(); l != "" && !refused["replication.listen"] {
		v.listen(p, "replication.listen", l)
	}
}

// configError reports a daemon-config error at the key that caused it: in
// the part, or in the defaults section it was inherited from.
func (v *siteValidator) configError(p *Part, e *Error) {
	if e.Field != "" {
		if _, set := p.lines[e.Field]; !set {
			if l, ok := v.dflt.lines[e.Field]; ok {
				v.add(l, "defaults."+e.Field, "%s (inherited by part %s)", e.Msg, p.Name)
				return
			}
		}
	}
	field := "parts." + p.Name
	if e.Field != "" {
		field += "." + e.Field
	}
	v.add(p.Line(e.Field), field, "%s", e.Msg)
}

// unitPath refuses what a systemd unit setting cannot hold as it is.
func (v *siteValidator) unitPath(p *Part, key, value string) {
	if strings.ContainsAny(value, unitUnsafe) {
		v.add(p.Line(key), "parts."+p.Name+"."+key, "%q: a path in a systemd unit may not contain spaces, quotes, '\\' or '%%'", value)
	}
}

// unitUnsafe are the characters unitPath refuses.
const unitUnsafe = " \t\n\"'\\%"

// socketPath checks a unix socket path a part binds (addr as written):
// absolute, since a service has no working directory, and short enough.
func socketPath(addr, p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%q: a socket path must be absolute", addr)
	}
	if len(p) > netaddr.MaxSocketPath {
		return fmt.Errorf("%q: a unix socket path may be at most %d bytes long", addr, netaddr.MaxSocketPath)
	}
	return nil
}

// reservedName is the part name whose config would be the site file.
const reservedName = "site"

// listen checks that a listening ADDR can be a systemd ListenStream=: a
// port, an IP address and port, or an absolute socket path.
func (v *siteValidator) listen(p *Part, key, addr string) {
	if _, err := ListenStream(addr); err != nil {
		v.add(p.Line(key), "parts."+p.Name+"."+key, "%v", err)
	}
}

// ListenStream turns a listening ADDR into the value of a socket unit's
// ListenStream=. systemd binds IP addresses only, so a host name is an
// error (say 127.0.0.1:8100 rather than localhost:8100); so are port 0
// (systemd cannot tell the daemon which port it got) and a relative path.
func ListenStream(addr string) (string, error) {
	a, err := netaddr.Parse(addr)
	if err != nil {
		return "", err
	}
	if a.Network == netaddr.Unix {
		if err := socketPath(addr, a.Host); err != nil {
			return "", err
		}
		if strings.ContainsAny(a.Host, " \t\n\\%") {
			return "", fmt.Errorf("%q: a socket path for systemd may not contain spaces, '\\' or '%%'", addr)
		}
		return path.Clean(a.Host), nil
	}
	if a.Port == 0 {
		return "", fmt.Errorf("%q: port 0 cannot be a systemd socket: choose a port", addr)
	}
	if a.Host == "" {
		return strconv.Itoa(a.Port), nil
	}
	ip, err := netip.ParseAddr(a.Host)
	if err != nil || ip.Zone() != "" {
		return "", fmt.Errorf("%q: systemd listens on IP addresses, not host names: write an address such as 127.0.0.1:%d, or the port alone for every interface", addr, a.Port)
	}
	return netip.AddrPortFrom(ip, uint16(a.Port)).String(), nil
}

// endpoint is one address a part listens on, for finding clashes.
type endpoint struct {
	part, key string
	line      int
	unix      string     // socket path, or ""
	ip        netip.Addr // invalid for every interface
	port      int
}

// clashes reports whether e and o cannot both be bound on one host.
func (e endpoint) clashes(o endpoint) bool {
	if e.unix != "" || o.unix != "" {
		return e.unix == o.unix
	}
	if e.port != o.port {
		return false
	}
	return !e.ip.IsValid() || !o.ip.IsValid() || e.ip.IsUnspecified() || o.ip.IsUnspecified() || e.ip == o.ip
}

// across checks what parts on one host may not share: listening ports and
// socket paths, data files.
func (v *siteValidator) across(parts []*Part) {
	parts = slices.Clone(parts)
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].line < parts[j].line }) // report the later one
	var eps []endpoint
	files := map[string]string{}
	for _, p := range parts {
		for _, key := range []string{"zeo.address", "replication.listen", "admin"} {
			if e, ok := partEndpoint(p, key); ok {
				for _, o := range eps {
					if e.clashes(o) {
						v.add(e.line, "parts."+p.Name+"."+key, "listens where parts.%s.%s does (line %d): give each its own port or path", o.part, o.key, o.line)
					}
				}
				eps = append(eps, e)
			}
		}
		if path.IsAbs(p.Path) {
			f := path.Clean(p.Path)
			if other, ok := files[f]; ok {
				v.add(p.Line("path"), "parts."+p.Name+".path", "%s is also the data file of part %s", f, other)
			}
			files[f] = p.Name
		}
	}
}

// partEndpoint is where p listens for key, if it does and the address is valid.
func partEndpoint(p *Part, key string) (endpoint, bool) {
	var addr string
	switch key {
	case "zeo.address":
		addr = p.ZEOAddress()
	case "replication.listen":
		addr = p.ReplicationListen()
	case "admin":
		addr = p.Admin
	}
	a, err := netaddr.Parse(addr)
	if addr == "" || err != nil {
		return endpoint{}, false
	}
	e := endpoint{part: p.Name, key: key, line: p.Line(key), port: a.Port}
	if a.Network == netaddr.Unix {
		e.unix = path.Clean(a.Host)
		return e, true
	}
	if a.Port == 0 {
		return endpoint{}, false // the system picks a free port
	}
	if a.Host != "" {
		ip, err := netip.ParseAddr(a.Host)
		if err != nil {
			ip = netip.Addr{} // a host name: assume it may be any interface
		}
		e.ip = ip.Unmap()
	}
	return e, true
}
