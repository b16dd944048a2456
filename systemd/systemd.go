package systemd

import (
	"embed"
	"text/template"
)

// Paths of the shipped files inside this directory, and where the packages
// install them on a host.
const (
	ServiceFile  = "zrs@.service"
	SysusersFile = "sysusers.d/zrs.conf"
	TmpfilesFile = "tmpfiles.d/zrs.conf"

	ServiceInstallPath  = "/usr/lib/systemd/system/zrs@.service"
	SysusersInstallPath = "/usr/lib/sysusers.d/zrs.conf"
	TmpfilesInstallPath = "/usr/lib/tmpfiles.d/zrs.conf"
)

//go:embed zrs@.service sysusers.d/zrs.conf tmpfiles.d/zrs.conf templates/*.tmpl
var files embed.FS

// Service returns the text of the zrs@.service template unit.
func Service() []byte { return mustRead(ServiceFile) }

// Sysusers returns the text of the sysusers.d file that creates the zrs user.
func Sysusers() []byte { return mustRead(SysusersFile) }

// Tmpfiles returns the text of the tmpfiles.d file for /var/lib/zrs and /etc/zrs.
func Tmpfiles() []byte { return mustRead(TmpfilesFile) }

// SocketData fills socket.tmpl: one listener of one part.
type SocketData struct {
	Unit   string // the unit's file name, e.g. "zrs-zeo@main.socket"
	Name   string // the part (instance) name
	What   string // "ZEO" or "replication", for people
	FDName string // FileDescriptorName=: "zeo" or "replication"
	Listen string // ListenStream=: a port, IP:port, [IPv6]:port or an absolute socket path
	Unix   bool   // Listen is a Unix socket path
	User   string // owner and group of a Unix socket
	Site   string // the site file's base name, for the header
}

// DropinData fills dropin.tmpl: what one part changes in zrs@.service.
type DropinData struct {
	Name           string   // the part (instance) name
	Site           string   // the site file's base name, for the header
	User           string   // User= and Group=, "" to keep the template's
	ReadWritePaths []string // directories the daemon must write besides its state directory
}

// Socket is the template of a per-part socket unit (executed with SocketData).
var Socket = mustParse("socket.tmpl")

// Dropin is the template of a per-part service drop-in (executed with DropinData).
var Dropin = mustParse("dropin.tmpl")

// The embedded files are part of the binary, so failing to read or parse
// them is a build defect that the package's tests catch, never a run-time
// condition.
func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("systemd: embedded file missing: " + name)
	}
	return b
}

func mustParse(name string) *template.Template {
	return template.Must(template.New(name).Option("missingkey=error").Parse(string(mustRead("templates/" + name))))
}
