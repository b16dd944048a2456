package recipes

import (
	"bytes"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/zrs-replication/zrs/internal/netaddr"
)

// DefaultImportName is the part name Import gives a single storage.
const DefaultImportName = "main"

// importedPart is one storage of a zeo.conf on its way to a part.
type importedPart struct {
	name, origin string // origin: "<zrs 1> (zeo.conf line 3)"
	storage      string // the ZEO storage name (the section's name, "1" when unnamed)
	role         string
	path         string
	listen, from string
	keepAlive    time.Duration
	blobDir      string // kept, so that zrs-recipe refuses the part until it is dealt with
	readOnly     int    // line of <filestorage> read-only true, 0 if none
	relPath      zkey   // a relative path, resolved by resolvePaths
	zeo          *importedZEO
	notes        []string
}

// importedZEO is what the <zeo> section says.
type importedZEO struct {
	address            string
	msgpack            *bool
	transactionTimeout time.Duration
	tls                map[string]string // certificate, key, authenticate
	readOnly           int               // line of read-only true, 0 if none
}

// importer collects the parts and the notes of one file.
type importer struct {
	file     string
	parts    []*importedPart
	zeo      *importedZEO
	zeoLine  int
	logLevel string
	notes    []string // for the whole file
	// runnerDir is the directory zdaemon changed to before it started
	// runzeo (<runner> daemon true, directory DIR), "" if not known.
	runnerDir  string
	runnerLine int
	relTLS     []zkey         // <ssl> files given relative, resolved by resolvePaths
	moved      []*movedSocket // relative sockets moved to /run/zrs
}

// movedSocket is a relative socket path of the file, moved to /run/zrs
// (where a service can bind it) under its base name.
type movedSocket struct {
	part  *importedPart // nil for the <zeo> address
	kind  string        // "zeo", "replication" (replicate-to) or "from"
	key   zkey
	orig  string    // the relative path, cleaned
	notes *[]string // the NOTE that says where it moved: (*notes)[idx]
	idx   int
}

// Import reads a Python ZEO configuration file (ZConfig: a <zeo> section
// and storages, with %import zc.zrs and the <zrs> sections of zc.zrs 2.4
// and later, or the <primary> and <secondary> sections of zc.zrs 2.0-2.3)
// and returns the equivalent site file. Every storage becomes a part: the
// only one is called name, several are called name-STORAGE. What has no
// equivalent (logging handlers, zdaemon's runner, ZEO tuning keys, blob
// directories, ...) becomes a "# NOTE" comment with its line.
func Import(file string, data []byte, name string) ([]byte, error) {
	if name == "" {
		name = DefaultImportName
	}
	zf, err := parseZConfig(file, data)
	if err != nil {
		return nil, err
	}
	im := &importer{file: path.Base(file)}
	if err := im.read(zf); err != nil {
		return nil, err
	}
	if len(im.parts) == 0 {
		return nil, fmt.Errorf("%s: no storage to import (want a <zrs>, <primary>, <secondary> or <filestorage> section)", file)
	}
	if err := im.checkReadOnly(); err != nil {
		return nil, err
	}
	im.resolvePaths()
	im.name(name)
	if err := im.resolveSockets(); err != nil {
		return nil, err
	}
	im.applyZEO()
	return im.emit(), nil
}

func (im *importer) note(line int, format string, args ...any) string {
	return fmt.Sprintf("NOTE %s line %d: ", im.file, line) + fmt.Sprintf(format, args...)
}

func (im *importer) errorf(line int, format string, args ...any) error {
	return &ZConfigError{File: im.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// read walks the top level of the file.
func (im *importer) read(zf *zfile) error {
	zrsImport := 0 // line of %import zc.zrs
	for _, imp := range zf.Imports {
		if imp.Value == "zc.zrs" {
			if zrsImport == 0 {
				zrsImport = imp.Line
			}
			continue
		}
		im.notes = append(im.notes, im.note(imp.Line, "%%import %s: no equivalent in zrs; ignored", imp.Value))
	}
	for _, k := range zf.Root.Keys {
		im.notes = append(im.notes, im.note(k.Line, "%s (outside any section): no equivalent in zrs; ignored", k.Name))
	}
	for _, s := range zf.Root.Sections {
		if err := im.section(s, zrsImport); err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) section(s *zsection, zrsImport int) error {
	switch s.Type {
	case "zeo":
		if im.zeo != nil {
			return im.errorf(s.Line, "a second <zeo> section (the first is on line %d)", im.zeoLine)
		}
		return im.readZEO(s)
	case "zrs", "primary", "secondary":
		if zrsImport == 0 || zrsImport > s.Line {
			return im.errorf(s.Line, "<%s> needs %%import zc.zrs before it (ZConfig would not know the section type)", s.Type)
		}
		p, err := im.replicated(s)
		if err != nil {
			return err
		}
		im.parts = append(im.parts, p)
	case "filestorage", "blobstorage":
		p := &importedPart{origin: im.origin(s), storage: storageName(s), role: "primary"}
		p.notes = append(p.notes, im.note(s.Line, "<%s> is not replicated in this file: add replication.listen to serve secondaries", s.Type))
		if err := im.storage(p, s); err != nil {
			return err
		}
		im.parts = append(im.parts, p)
	case "eventlog", "logger":
		im.readLog(s)
	case "runner":
		im.readRunner(s)
	case "replicationlog":
		im.notes = append(im.notes, im.note(s.Line, "<replicationlog> (zc.zrs 2.x replication log recorder): no equivalent in zrs; ignored"))
	default:
		im.notes = append(im.notes, im.note(s.Line, "<%s>: no equivalent in zrs (it replicates FileStorage only); ignored", s.Type))
	}
	return nil
}

func (im *importer) origin(s *zsection) string {
	h := "<" + s.Type
	if s.Name != "" {
		h += " " + s.Name
	}
	return fmt.Sprintf("%s> (%s line %d)", h, im.file, s.Line)
}

// storageName is the ZEO storage name of a storage section: its section
// name in lower case, as ZConfig hands it to runzeo (<filestorage Catalog>
// is served as "catalog"), "1" when it has none.
func storageName(s *zsection) string {
	if s.Name == "" {
		return "1"
	}
	return strings.ToLower(s.Name)
}

// readZEO reads <zeo>.
func (im *importer) readZEO(s *zsection) error {
	z := &importedZEO{}
	im.zeo, im.zeoLine = z, s.Line
	for _, k := range s.Keys {
		switch k.Name {
		case "address":
			a, note := im.listenAddr(k, "")
			z.address = a
			if note != "" {
				im.notes = append(im.notes, note)
				im.recordMoved(nil, "zeo", k, &im.notes)
			}
		case "msgpack":
			b, err := zbool(k)
			if err != nil {
				return im.errorf(k.Line, "%v", err)
			}
			z.msgpack = &b
		case "transaction-timeout":
			d, err := zseconds(k)
			if err != nil {
				return im.errorf(k.Line, "%v", err)
			}
			z.transactionTimeout = d
		case "read-only":
			ro, err := zbool(k)
			if err != nil {
				return im.errorf(k.Line, "%v", err)
			}
			if ro {
				z.readOnly = k.Line // refused if a part is a primary (checkReadOnly)
			}
			im.notes = append(im.notes, im.note(k.Line, "read-only %s: a zrs secondary serves ZEO read-only, a primary read-write; ignored", k.Value))
		case "authentication-protocol", "authentication-database", "authentication-realm":
			// ZEO 4 and earlier: clients had to log in. Dropping it would
			// open the storage to anyone who can connect.
			return im.errorf(k.Line, "<zeo> %s %s: zrs has no password authentication, so clients would no longer have to log in; "+
				"restrict them with TLS client certificates instead (<ssl> certificate, key and authenticate in <zeo>, zeo.tls.authenticate in the site file), "+
				"then remove the authentication-* lines and import again", k.Name, k.Value)
		case "invalidation-queue-size", "invalidation-age":
			im.notes = append(im.notes, im.note(k.Line, "%s %s: no setting in zrs; ignored", k.Name, k.Value))
		case "client-conflict-resolution":
			im.notes = append(im.notes, im.note(k.Line, "client-conflict-resolution %s: zrs always lets the clients resolve conflicts; ignored", k.Value))
		default:
			im.notes = append(im.notes, im.note(k.Line, "<zeo> %s %s: no equivalent in zrs; ignored", k.Name, k.Value))
		}
	}
	for _, sub := range s.Sections {
		if sub.Type != "ssl" {
			im.notes = append(im.notes, im.note(sub.Line, "<%s> in <zeo>: no equivalent in zrs; ignored", sub.Type))
			continue
		}
		z.tls = map[string]string{}
		var password *zkey
		for _, k := range sub.Keys {
			switch k.Name {
			case "certificate", "key", "authenticate":
				if err := im.notHome(k); err != nil {
					return err
				}
				z.tls[k.Name] = k.Value
				if !path.IsAbs(k.Value) {
					im.relTLS = append(im.relTLS, k)
				}
			case "password-function":
				password = &k
			default:
				im.notes = append(im.notes, im.note(k.Line, "<ssl> %s: no equivalent in zrs; ignored", k.Name))
			}
		}
		if password != nil {
			// A password function is there because the key is encrypted,
			// which zrs cannot read: it would fail only when it starts.
			key := z.tls["key"]
			if key == "" {
				key = z.tls["certificate"]
			}
			if key == "" {
				key = "KEY"
			}
			return im.errorf(password.Line, "<ssl> password-function %s: the private key is encrypted, and zrs reads only an unencrypted PEM key; "+
				"decrypt it (openssl pkey -in %s -out %s.plain), make the result readable by the zrs user only (chown zrs %s.plain; chmod 0400 %s.plain), "+
				"point <ssl> key at it, remove password-function and import again", password.Value, key, key, key, key)
		}
		if cert, ok := z.tls["certificate"]; ok {
			if _, ok := z.tls["key"]; !ok {
				// ZEO's key is optional: the certificate file holds both,
				// which Go's tls.LoadX509KeyPair(f, f) reads as well.
				z.tls["key"] = cert
				im.notes = append(im.notes, im.note(sub.Line, "<ssl> has no key: the key is read from the certificate file %s, as ZEO did (key: is set to that file)", cert))
			}
		}
	}
	return nil
}

// replicated reads <zrs>, <primary> or <secondary>.
func (im *importer) replicated(s *zsection) (*importedPart, error) {
	p := &importedPart{origin: im.origin(s), storage: storageName(s)}
	legacy := s.Type != "zrs"
	seen := map[string]int{}
	keepAliveLine := 0
	for _, k := range s.Keys {
		if l, ok := seen[k.Name]; ok {
			return nil, im.errorf(k.Line, "%s given twice in <%s> (first on line %d)", k.Name, s.Type, l)
		}
		seen[k.Name] = k.Line
		switch {
		case k.Name == "replicate-to" || k.Name == "address" && s.Type == "primary":
			a, note := im.listenAddr(k, "replication")
			p.listen = a
			if note != "" {
				p.addNote(note)
				im.recordMoved(p, "replication", k, &p.notes)
			}
		case k.Name == "replicate-from" && s.Type != "primary" || k.Name == "address" && s.Type == "secondary":
			a, err := netaddr.Parse(k.Value)
			if err != nil {
				return nil, im.errorf(k.Line, "%s: %v", k.Name, err)
			}
			p.from = k.Value
			if a.Network == netaddr.Unix && !path.IsAbs(a.Host) {
				// As a relative replicate-to moves (listenAddr), so
				// that both ends imported from one machine still meet.
				p.from = path.Join(runtimeDir, path.Base(a.Host))
				p.addNote(im.note(k.Line, "%s %s is relative: the secondary now connects to %s (where an imported primary's relative socket moves)", k.Name, k.Value, p.from))
				im.recordMoved(p, "from", k, &p.notes)
			}
		case k.Name == "keep-alive-delay" && s.Type != "primary":
			d, err := zseconds(k)
			if err != nil {
				return nil, im.errorf(k.Line, "%v", err)
			}
			p.keepAlive, keepAliveLine = d, k.Line
		case (k.Name == "filestorage-path") && legacy:
			if err := im.dataPath(p, k); err != nil {
				return nil, err
			}
		case k.Name == "blob-dir":
			im.blob(p, k)
		case k.Name == "check-checksums" || k.Name == "check_checksums":
			p.addNote(im.note(k.Line, "%s %s: zrs always checks the stream (MD5 for zrs2, and more with zrs3); ignored", k.Name, k.Value))
		case k.Name == "zookeeper" || k.Name == "replicate-from-zookeeper":
			p.addNote(im.note(k.Line, "%s %s: ZooKeeper discovery is not in zrs; set replication.from by hand", k.Name, k.Value))
		default:
			p.addNote(im.note(k.Line, "%s %s in <%s>: no equivalent in zrs; ignored", k.Name, k.Value, s.Type))
		}
	}
	if p.listen == "" && p.from == "" {
		return nil, im.errorf(s.Line, "<%s> needs replicate-to and/or replicate-from", s.Type)
	}
	p.role = "primary"
	if p.from != "" {
		p.role = "secondary"
	}
	if p.role == "primary" && p.keepAlive > 0 {
		// zc.zrs hands keep-alive-delay to a secondary only; a template
		// shared by all of a site's hosts has it on the primary too.
		p.addNote(im.note(keepAliveLine, "keep-alive-delay %d: only a secondary sends keep-alives (zc.zrs ignored it on a primary); ignored", int(p.keepAlive.Seconds())))
		p.keepAlive = 0
	}
	if s.Type == "zrs" && len(s.Sections) == 0 {
		return nil, im.errorf(s.Line, "<zrs> needs a storage section, such as <filestorage> path ... </filestorage>")
	}
	for _, sub := range s.Sections {
		if err := im.storage(p, sub); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *importedPart) addNote(n string) {
	if n != "" {
		p.notes = append(p.notes, n)
	}
}

// storage reads the storage section inside a ZRS section (or a top-level
// one): a <filestorage>, possibly wrapped in the old <blobstorage>.
func (im *importer) storage(p *importedPart, s *zsection) error {
	switch s.Type {
	case "filestorage":
		if _, ok := s.key("path"); !ok {
			return im.errorf(s.Line, "<filestorage> needs a path")
		}
		for _, k := range s.Keys {
			switch k.Name {
			case "path":
				if err := im.dataPath(p, k); err != nil {
					return err
				}
			case "blob-dir":
				im.blob(p, k)
			case "read-only":
				ro, err := zbool(k)
				if err != nil {
					return im.errorf(k.Line, "%v", err)
				}
				if ro {
					p.readOnly = k.Line
				}
				p.addNote(im.note(k.Line, "<filestorage> read-only %s: a zrs secondary keeps its storage read-only to clients, a primary is read-write; ignored", k.Value))
			default:
				p.addNote(im.note(k.Line, "<filestorage> %s %s: no equivalent in zrs; ignored", k.Name, k.Value))
			}
		}
		for _, sub := range s.Sections {
			p.addNote(im.note(sub.Line, "<%s> in <filestorage>: no equivalent in zrs; ignored", sub.Type))
		}
	case "blobstorage":
		for _, k := range s.Keys {
			if k.Name == "blob-dir" {
				im.blob(p, k)
			} else {
				p.addNote(im.note(k.Line, "<blobstorage> %s %s: no equivalent in zrs; ignored", k.Name, k.Value))
			}
		}
		for _, sub := range s.Sections {
			if err := im.storage(p, sub); err != nil {
				return err
			}
		}
	default:
		return im.errorf(s.Line, "<%s>: zrs replicates FileStorage only (want <filestorage>)", s.Type)
	}
	return nil
}

// dataPath takes a FileStorage path; a relative one (relative to where
// runzeo ran) is resolved by resolvePaths.
func (im *importer) dataPath(p *importedPart, k zkey) error {
	if err := im.notHome(k); err != nil {
		return err
	}
	if path.IsAbs(k.Value) {
		p.path = path.Clean(k.Value)
		return nil
	}
	p.relPath = k
	return nil
}

// notHome refuses a path starting with ~, which ZConfig expanded to the
// home directory of the user runzeo ran as: not relative to where it ran,
// and not a directory the import can know.
func (im *importer) notHome(k zkey) error {
	if strings.HasPrefix(k.Value, "~") {
		return im.errorf(k.Line, "%s %s: ~ is the home directory of the user runzeo ran as (ZConfig expands it): write the absolute path and import again", k.Name, k.Value)
	}
	return nil
}

// readRunner reads zdaemon's <runner>: with daemon true (zdaemon's
// default, but only an explicit one is taken) and an absolute directory,
// zdaemon changes to that directory before it starts runzeo, so that is
// what relative paths are relative to.
func (im *importer) readRunner(s *zsection) {
	im.notes = append(im.notes, im.note(s.Line, "<runner> (zdaemon): systemd runs each part as zrs@NAME.service; ignored"))
	k, ok := s.key("daemon")
	if !ok {
		return
	}
	daemon, err := zbool(k)
	if dir, ok := s.key("directory"); err == nil && daemon && ok && path.IsAbs(dir.Value) {
		im.runnerDir, im.runnerLine = path.Clean(dir.Value), dir.Line
	}
}

// resolvePaths turns the relative data paths into absolute ones where
// <runner> says where runzeo ran. Otherwise the path stays as written,
// which zrs-recipe refuses: an existing database must not be replaced
// by a new, empty one at the default path unnoticed.
func (im *importer) resolvePaths() {
	for _, p := range im.parts {
		k := p.relPath
		if k.Value == "" {
			continue
		}
		if im.runnerDir != "" {
			p.path = path.Join(im.runnerDir, k.Value)
			p.addNote(im.note(k.Line, "path %s is relative to where runzeo ran: zdaemon's <runner> has daemon true and directory %s (line %d), "+
				"where it changes before starting runzeo, so the data file is %s; check that it is the file runzeo served", k.Value, im.runnerDir, im.runnerLine, p.path))
			continue
		}
		p.path = k.Value
		p.addNote(im.note(k.Line, "path %s is relative to where runzeo ran, which this file does not say (no <runner> with daemon true and an absolute directory): "+
			"set path to that file's absolute path; zrs-recipe refuses a relative one", k.Value))
	}
	// The <ssl> files were relative to the same directory.
	for _, k := range im.relTLS {
		if im.runnerDir == "" {
			im.notes = append(im.notes, im.note(k.Line, "<ssl> %s %s is relative to where runzeo ran, which this file does not say: "+
				"set it to the file's absolute path; zrs-recipe refuses a relative one", k.Name, k.Value))
			continue
		}
		abs := path.Join(im.runnerDir, k.Value)
		for name, v := range im.zeo.tls {
			if v == k.Value {
				im.zeo.tls[name] = abs // key may be the certificate's file
			}
		}
		im.notes = append(im.notes, im.note(k.Line, "<ssl> %s %s is relative to where runzeo ran: zdaemon's <runner> directory %s (line %d), so it is %s; check that it is the file runzeo used",
			k.Name, k.Value, im.runnerDir, im.runnerLine, abs))
	}
}

// checkReadOnly refuses read-only true on a storage that becomes a
// primary: zrs serves a primary read-write, so the storage would take
// writes it refused before. On a secondary it is what zrs does anyway.
func (im *importer) checkReadOnly() error {
	for _, p := range im.parts {
		if p.role != "primary" {
			continue
		}
		line, what := p.readOnly, "<filestorage> read-only true"
		if line == 0 && im.zeo != nil && im.zeo.readOnly != 0 {
			line, what = im.zeo.readOnly, "<zeo> read-only true"
		}
		if line != 0 {
			return im.errorf(line, "%s: %s becomes a zrs primary, which clients can write to; "+
				"to keep it read-only, run it as a zrs secondary of the real primary (replicate-from in <zrs>, replication.from in the site file); "+
				"to let clients write, remove read-only knowingly and import again", what, p.origin)
		}
	}
	return nil
}

// blob records a blob directory: a note, and blob_dir in the part, which
// zrs-recipe refuses (zrs does not replicate blobs yet), so that such a
// database is not moved without its blobs unnoticed.
func (im *importer) blob(p *importedPart, k zkey) {
	p.blobDir = k.Value
	p.addNote(im.blobNote(k))
}

func (im *importer) blobNote(k zkey) string {
	return im.note(k.Line, "blob-dir %s: zrs does not replicate blobs yet; a database with blobs cannot move to zrs yet", k.Value)
}

// listenAddr converts a listening address for a socket unit: "localhost"
// becomes 127.0.0.1, a relative socket path moves to /run/zrs; other host
// names stay, with a note (systemd binds IP addresses only).
func (im *importer) listenAddr(k zkey, what string) (string, string) {
	a, err := netaddr.Parse(k.Value)
	if err != nil {
		return k.Value, im.note(k.Line, "%s %s: %v", k.Name, k.Value, err)
	}
	switch {
	case a.Network == netaddr.Unix && !path.IsAbs(a.Host):
		if what == "" {
			what = "zeo"
		}
		abs := path.Join(runtimeDir, path.Base(a.Host))
		return abs, im.note(k.Line, "%s %s is relative: the %s socket is now %s", k.Name, k.Value, what, abs)
	case a.Network == netaddr.TCP && a.Host == "localhost":
		a.Host = "127.0.0.1"
		return a.String(), ""
	case a.Network == netaddr.TCP && a.Host != "":
		if _, err := netip.ParseAddr(a.Host); err != nil {
			return k.Value, im.note(k.Line, "%s %s: systemd listens on IP addresses, not host names: write the interface's address", k.Name, k.Value)
		}
	}
	return a.String(), ""
}

// recordMoved remembers that key k's socket moved to /run/zrs, if it was
// a relative one, with the NOTE just added to *notes that says so.
func (im *importer) recordMoved(p *importedPart, kind string, k zkey, notes *[]string) {
	a, err := netaddr.Parse(k.Value)
	if err != nil || a.Network != netaddr.Unix || path.IsAbs(a.Host) {
		return
	}
	im.moved = append(im.moved, &movedSocket{part: p, kind: kind, key: k, orig: path.Clean(a.Host), notes: notes, idx: len(*notes) - 1})
}

// resolveSockets keeps different relative sockets different once moved
// to /run/zrs/BASENAME (../primary/var/zrs.sock and var/zrs.sock would
// both be /run/zrs/zrs.sock). A socket this file listens on gets a name
// of its own part, /run/zrs/NAME-zeo.sock or NAME-replication.sock; a
// replicate-from is refused, since where the other end listens now
// cannot be guessed.
func (im *importer) resolveSockets() error {
	moved := func(m *movedSocket) string {
		switch m.kind {
		case "zeo":
			return im.zeo.address
		case "replication":
			return m.part.listen
		}
		return m.part.from
	}
	// clash is another socket that moved to where m did from elsewhere.
	clash := func(m *movedSocket) *movedSocket {
		for _, o := range im.moved {
			if o.orig != m.orig && moved(o) == moved(m) {
				return o
			}
		}
		return nil
	}
	// listener is the replication socket of this file that a from names.
	listener := func(m *movedSocket) *movedSocket {
		for _, o := range im.moved {
			if o.kind == "replication" && o.orig == m.orig {
				return o
			}
		}
		return nil
	}
	for _, m := range im.moved {
		if o := clash(m); o != nil && m.kind == "from" && listener(m) == nil {
			return im.errorf(m.key.Line, "%s %s and %s %s (line %d) would both become %s, where relative sockets move: "+
				"write replicate-from as the absolute path of the socket its primary's zrs part will listen on, and import again", m.key.Name, m.key.Value, o.key.Name, o.key.Value, o.key.Line, moved(m))
		}
	}
	var renamed, follow []*movedSocket
	for _, m := range im.moved {
		switch {
		case m.kind == "from" && listener(m) != nil:
			follow = append(follow, m) // goes where its listener goes
		case clash(m) != nil:
			renamed = append(renamed, m)
		}
	}
	for _, m := range renamed {
		owner := m.part
		if owner == nil {
			owner = im.parts[0] // applyZEO gives it the <zeo> section
		}
		was := moved(m)
		abs := path.Join(runtimeDir, owner.name+"-"+m.kind+".sock")
		if m.kind == "zeo" {
			im.zeo.address = abs
		} else {
			m.part.listen = abs
		}
		(*m.notes)[m.idx] = im.note(m.key.Line, "%s %s is relative: the %s socket is now %s (not %s, where another socket of this file moves)", m.key.Name, m.key.Value, m.kind, abs, was)
	}
	for _, m := range follow {
		l := listener(m)
		if was := m.part.from; was != l.part.listen {
			m.part.from = l.part.listen
			(*m.notes)[m.idx] = im.note(m.key.Line, "%s %s is relative: it is the socket %s of this file (line %d), so the secondary now connects to %s, where that one moves",
				m.key.Name, m.key.Value, l.key.Value, l.key.Line, m.part.from)
		}
	}
	for _, m := range renamed {
		if o := clash(m); o != nil {
			return im.errorf(m.key.Line, "%s %s and %s %s (line %d) would both become %s: give one of them an absolute path and import again", m.key.Name, m.key.Value, o.key.Name, o.key.Value, o.key.Line, moved(m))
		}
	}
	return nil
}

// readLog maps the level of <eventlog>, the root logger, or of a
// <logger> without a name (or named root); handlers have no equivalent
// (zrs logs to stderr, the journal under systemd). zrs has one log
// level, so a named <logger>'s level (one Python logger's) is a NOTE.
func (im *importer) readLog(s *zsection) {
	logger := ""
	if n, ok := s.key("name"); ok && s.Type == "logger" && !strings.EqualFold(n.Value, "root") {
		logger = n.Value
	}
	for _, k := range s.Keys {
		if k.Name == "name" && s.Type == "logger" {
			continue
		}
		if k.Name != "level" {
			im.notes = append(im.notes, im.note(k.Line, "<%s> %s: no equivalent in zrs; ignored", s.Type, k.Name))
			continue
		}
		if logger != "" {
			im.notes = append(im.notes, im.note(k.Line, "<logger> %s level %s: zrs has one log level for the whole daemon (from <eventlog>), not one per logger; ignored", logger, k.Value))
			continue
		}
		switch strings.ToUpper(k.Value) {
		case "TRACE", "DEBUG", "BLATHER", "NOTSET", "ALL":
			im.logLevel = "debug"
		case "INFO":
			im.logLevel = "info"
		case "WARN", "WARNING", "PROBLEM":
			im.logLevel = "warn"
		case "ERROR", "CRITICAL", "FATAL", "PANIC":
			im.logLevel = "error"
		default:
			im.notes = append(im.notes, im.note(k.Line, "level %s: not a level zrs knows; ignored", k.Value))
		}
	}
	for _, sub := range s.Sections {
		im.notes = append(im.notes, im.note(sub.Line, "<%s> in <%s>: zrs logs to stderr, which systemd keeps in the journal (journalctl -u zrs@NAME); ignored", sub.Type, s.Type))
	}
}

// name names the parts: name alone, or name-STORAGE for several.
func (im *importer) name(name string) {
	if len(im.parts) == 1 {
		im.parts[0].name = name
		return
	}
	used := map[string]bool{}
	for i, p := range im.parts {
		n := name + "-" + sanitize(p.storage)
		for k := i + 1; used[n]; k++ {
			n = name + "-" + strconv.Itoa(k) // the part's number, or the next free one
		}
		used[n] = true
		p.name = n
	}
}

// sanitize keeps the characters a part name may have.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isZNameByte(c) && c != '-' && c != '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// applyZEO gives the <zeo> section to the first part: a zrs instance
// serves one storage, under its name (zeo.storage, written when not "1").
func (im *importer) applyZEO() {
	for i, p := range im.parts {
		if im.zeo != nil && i == 0 {
			p.zeo = im.zeo
			continue
		}
		if im.zeo != nil {
			p.addNote(fmt.Sprintf("NOTE <zeo> (%s line %d) served this storage too: a zrs instance serves one storage, so give this part its own zeo.address", im.file, im.zeoLine))
		}
		if p.storage != "1" {
			p.addNote(fmt.Sprintf("NOTE the ZEO storage was called %q: with a zeo section here, add storage: %s to it so that clients keep asking for that name", p.storage, scalar(p.storage)))
		}
	}
}

// emit writes the site file.
func (im *importer) emit() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# site.yaml imported by \"zrs-recipe import\" from %s.\n", im.file)
	b.WriteString("# Read the NOTE comments, then install it as /etc/zrs/site.yaml and run\n")
	b.WriteString("# zrs-recipe (zrs-recipe --help says what each key means).\n")
	for _, n := range im.notes {
		b.WriteString("#\n")
		writeComment(&b, "", n)
	}
	if im.logLevel != "" {
		fmt.Fprintf(&b, "defaults:\n  log_level: %s\n", im.logLevel)
	}
	b.WriteString("parts:\n")
	for _, p := range im.parts {
		p.emit(&b)
	}
	return b.Bytes()
}

func (p *importedPart) emit(b *bytes.Buffer) {
	fmt.Fprintf(b, "  %s:\n", scalar(p.name))
	fmt.Fprintf(b, "    # From %s.\n", p.origin)
	fmt.Fprintf(b, "    role: %s\n", p.role)
	if p.path != "" {
		fmt.Fprintf(b, "    path: %s\n", scalar(p.path))
	}
	if p.blobDir != "" {
		fmt.Fprintf(b, "    blob_dir: %s\n", scalar(p.blobDir))
	}
	// zrs status, zrs promote and the documentation reach a part there.
	fmt.Fprintf(b, "    admin: %s\n", scalar(path.Join(runtimeDir, p.name+".admin")))
	if z := p.zeo; z != nil {
		b.WriteString("    zeo:\n")
		fmt.Fprintf(b, "      address: %s\n", scalar(z.address))
		if p.storage != "1" {
			fmt.Fprintf(b, "      storage: %s\n", scalar(p.storage))
		}
		if z.msgpack != nil {
			fmt.Fprintf(b, "      msgpack: %t\n", *z.msgpack)
		}
		if z.transactionTimeout > 0 {
			fmt.Fprintf(b, "      transaction_timeout: %s\n", z.transactionTimeout)
		}
		if z.tls != nil {
			b.WriteString("      tls:\n")
			for _, k := range []string{"certificate", "key", "authenticate"} {
				if v, ok := z.tls[k]; ok {
					fmt.Fprintf(b, "        %s: %s\n", k, scalar(v))
				}
			}
		}
	}
	p.emitReplication(b)
	for _, n := range p.notes {
		writeComment(b, "    ", n)
	}
}

// emitReplication writes the replication section, if the part has one.
func (p *importedPart) emitReplication(b *bytes.Buffer) {
	if p.from == "" && p.listen == "" {
		return
	}
	b.WriteString("    replication:\n")
	if p.from != "" {
		fmt.Fprintf(b, "      from: %s\n", scalar(p.from))
	}
	if p.listen != "" {
		fmt.Fprintf(b, "      listen: %s\n", scalar(p.listen))
	}
	if p.role == "secondary" {
		b.WriteString("      # zrs3 with a zrs primary, zrs2.0 with a Python zc.zrs one.\n")
		b.WriteString("      protocol: auto\n")
	}
	if p.keepAlive > 0 {
		fmt.Fprintf(b, "      keep_alive: %s\n", p.keepAlive)
	}
}

// writeComment writes text as comment lines of at most ~78 columns.
func writeComment(b *bytes.Buffer, indent, text string) {
	line := indent + "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 78 && len(line) > len(indent)+1 {
			b.WriteString(line + "\n")
			line = indent + "#  "
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// scalar writes s as a YAML string, quoted only where YAML needs it (a
// port alone would otherwise read as a number).
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// zbool reads a ZConfig boolean.
func zbool(k zkey) (bool, error) {
	switch strings.ToLower(k.Value) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s %q: want true or false", k.Name, k.Value)
}

// zseconds reads a whole number of seconds, as zc.zrs and ZEO take them.
func zseconds(k zkey) (time.Duration, error) {
	n, err := strconv.Atoi(k.Value)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a whole number of seconds", k.Name, k.Value)
	}
	return time.Duration(n) * time.Second, nil
}
