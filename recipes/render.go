package recipes

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
	"github.com/zrs-replication/zrs/systemd"
)

// Where the rendered files go on a host (under Options.Root).
const (
	ConfigDir  = "/etc/zrs"
	UnitDir    = "/etc/systemd/system"
	StateFile  = "/var/lib/zrs-recipe/installed.json"
	runtimeDir = "/run/zrs" // RuntimeDirectory=zrs of the template
	dropinName = "zrs-recipe.conf"
)

// Socket names (FileDescriptorName=) that zrs run matches listeners by.
const (
	FDNameZEO         = "zeo"
	FDNameReplication = "replication"
)

// File is one rendered file.
type File struct {
	Path string // absolute path on the host, such as /etc/zrs/main.yaml
	Part string // the part it belongs to
	Data []byte
}

// ServiceUnit is the service instance of part name: zrs@NAME.service.
func ServiceUnit(name string) string { return "zrs@" + name + ".service" }

// ZEOSocketUnit is the socket unit of part name's ZEO listener.
func ZEOSocketUnit(name string) string { return "zrs-zeo@" + name + ".socket" }

// ReplSocketUnit is the socket unit of part name's replication listener.
func ReplSocketUnit(name string) string { return "zrs-replication@" + name + ".socket" }

// ConfigPath is the daemon config of part name: /etc/zrs/NAME.yaml.
func ConfigPath(name string) string { return path.Join(ConfigDir, name+".yaml") }

func dropinPath(name string) string { return path.Join(UnitDir, ServiceUnit(name)+".d", dropinName) }
func unitPath(unit string) string   { return path.Join(UnitDir, unit) }

// Render returns every file the site needs, sorted by path: per part
// /etc/zrs/NAME.yaml, zrs-zeo@NAME.socket when it serves ZEO,
// zrs-replication@NAME.socket when it serves secondaries, and
// zrs@NAME.service.d/zrs-recipe.conf when it runs as another user than
// zrs or writes outside the template's ReadWritePaths=.
func Render(s *Site) ([]File, error) {
	var files []File
	for _, p := range s.Parts {
		fs, err := renderPart(s, p)
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", p.Name, err)
		}
		files = append(files, fs...)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func renderPart(s *Site, p *Part) ([]File, error) {
	cfg, err := renderConfig(s, p)
	if err != nil {
		return nil, err
	}
	files := []File{{Path: ConfigPath(p.Name), Part: p.Name, Data: cfg}}
	sockets := []struct {
		unit, what, fdname, addr string
	}{
		{ZEOSocketUnit(p.Name), "ZEO", FDNameZEO, p.ZEOAddress()},
		{ReplSocketUnit(p.Name), "replication", FDNameReplication, p.ReplicationListen()},
	}
	for _, sk := range sockets {
		if sk.addr == "" {
			continue
		}
		listen, err := ListenStream(sk.addr)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		err = systemd.Socket.Execute(&b, systemd.SocketData{Unit: sk.unit, Name: p.Name, What: sk.what,
			FDName: sk.fdname, Listen: listen, Unix: strings.HasPrefix(listen, "/"), User: p.User, Site: siteName(s)})
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: unitPath(sk.unit), Part: p.Name, Data: b.Bytes()})
	}
	if d, ok := dropin(p); ok {
		d.Site = siteName(s)
		var b bytes.Buffer
		if err := systemd.Dropin.Execute(&b, d); err != nil {
			return nil, err
		}
		files = append(files, File{Path: dropinPath(p.Name), Part: p.Name, Data: b.Bytes()})
	}
	return files, nil
}

// siteName is the site file's base name, which rendered files' headers
// tell to edit.
func siteName(s *Site) string {
	if s.File == "" {
		return "site.yaml"
	}
	return path.Base(s.File)
}

// renderConfig is /etc/zrs/NAME.yaml: a header saying where it comes from,
// then the daemon config as internal/config renders it.
func renderConfig(s *Site, p *Part) ([]byte, error) {
	body, err := config.Render(p.DaemonConfig())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: the config of %s (zrs run --config).\n", ConfigPath(p.Name), ServiceUnit(p.Name))
	fmt.Fprintf(&b, "# Written by zrs-recipe from %s (part %q). Edit %s and run\n", siteName(s), p.Name, siteName(s))
	b.WriteString("# zrs-recipe again; it refuses to overwrite a hand-edited copy.\n")
	b.Write(body)
	return b.Bytes(), nil
}

// dropin says what p needs beyond the zrs@.service template, if anything:
// its user, and the directories it writes outside its state directory
// (/var/lib/zrs/NAME, writable through StateDirectory=) and the runtime
// directory /run/zrs: the directory of its Data.fs (which also holds the
// index, lock and temporary files), and that of its admin socket.
func dropin(p *Part) (systemd.DropinData, bool) {
	d := systemd.DropinData{Name: p.Name}
	if p.User != DefaultUser {
		d.User = p.User
	}
	state := path.Join(DefaultDataDir, p.Name)
	if dir := path.Dir(path.Clean(p.Path)); !within(dir, state) {
		d.ReadWritePaths = append(d.ReadWritePaths, dir)
	}
	if a, err := netaddr.Parse(p.Admin); err == nil && a.Network == netaddr.Unix {
		dir := path.Dir(path.Clean(a.Host))
		covered := within(dir, runtimeDir) || within(dir, state)
		for _, p := range d.ReadWritePaths {
			covered = covered || within(dir, p)
		}
		if !covered {
			d.ReadWritePaths = append(d.ReadWritePaths, dir)
		}
	}
	return d, d.User != "" || len(d.ReadWritePaths) > 0
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
