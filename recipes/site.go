package recipes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/zrs-replication/zrs/internal/config"
)

// Defaults of a site file that leaves them out.
const (
	DefaultDataDir = "/var/lib/zrs"
	DefaultUser    = "zrs"
	// DataFile is the file name of a part's Data.fs under DATA_DIR/NAME/.
	DataFile = "Data.fs"
)

// Site is a parsed site file: the parts, each already merged with the
// defaults section and validated.
type Site struct {
	File  string  // as given to ParseSite, for messages
	Parts []*Part // sorted by name
}

// Part is one storage server of a site: an instance zrs@NAME.service.
//
// Its keys are those of the daemon config (internal/config: role, path,
// zeo, replication, durability, ...) plus two that only the recipe uses.
// After ParseSite, Path, LogLevel, DataDir and User are filled in.
type Part struct {
	config.Config `yaml:",inline"`
	// DataDir is where the part's data live: Path defaults to
	// DATA_DIR/NAME/Data.fs.
	DataDir string `yaml:"data_dir"`
	// User runs the daemon (zrs@NAME.service User= and Group=), and owns
	// its Unix sockets.
	User string `yaml:"user"`

	line  int            // of the part's key under parts
	lines map[string]int // key path under the part ("zeo.address") -> line
}

// LoadSite reads and parses the site file at file.
func LoadSite(file string) (*Site, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no site file at %s: copy %s there and edit it (or give --site FILE)", file, ExampleSite)
	}
	if err != nil {
		return nil, err
	}
	return ParseSite(file, data)
}

// ExampleSite is where the package installs its annotated site file.
const ExampleSite = "/etc/zrs/site.yaml.example"

// ParseSite decodes a site file strictly (unknown or repeated keys, values
// of the wrong type and more than one document are errors, each naming the
// line and the key path), merges the defaults into every part and
// validates the site. file names the source in errors. A validation
// failure is an Errors holding every problem found.
func ParseSite(file string, data []byte) (*Site, error) {
	root, err := config.Document(file, data, "empty site file: want a mapping with parts")
	if err != nil {
		return nil, err
	}
	w := newWalker(file)
	defaults, parts, err := w.site(root)
	if err != nil {
		return nil, err
	}
	s := &Site{File: file, Parts: parts}
	v := &siteValidator{file: file}
	v.checkDefaults(defaults)
	for _, p := range parts {
		merge(p, defaults)
		v.part(p)
	}
	v.across(parts)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return s, nil
}

// site decodes the top level: the defaults section and each part.
func (w *walker) site(root *yaml.Node) (*Part, []*Part, error) {
	defaults := &Part{lines: map[string]int{}}
	var parts []*Part
	err := w.Mapping(root, "", func(k, val *yaml.Node, key string) error {
		switch k.Value {
		case "defaults":
			defaults.line = k.Line
			w.lines, w.base = defaults.lines, key
			err := w.Decode(val, reflect.ValueOf(defaults).Elem(), key)
			w.lines, w.base = nil, ""
			return err
		case "parts":
			var err error
			parts, err = w.parts(val)
			return err
		}
		return w.Errorf(k, key, "unknown field (want defaults or parts)")
	})
	if err != nil {
		return nil, nil, err
	}
	if parts == nil {
		return nil, nil, &Error{File: w.File, Line: root.Line, Field: "parts", Msg: "required: at least one part"}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Name < parts[j].Name })
	return defaults, parts, nil
}

// parts decodes the parts mapping: part name -> part.
func (w *walker) parts(n *yaml.Node) ([]*Part, error) {
	var parts []*Part
	err := w.Mapping(n, "parts", func(k, val *yaml.Node, key string) error {
		p := &Part{line: k.Line, lines: map[string]int{}}
		p.Name = k.Value
		w.lines, w.base = p.lines, key
		defer func() { w.lines, w.base = nil, "" }()
		if err := w.Decode(val, reflect.ValueOf(p).Elem(), key); err != nil {
			return err
		}
		parts = append(parts, p)
		return nil
	})
	if err == nil && len(parts) == 0 {
		err = &Error{File: w.File, Line: n.Line, Field: "parts", Msg: "required: at least one part"}
	}
	return parts, err
}

// merge fills what p leaves out from the defaults section d, then the
// built-in defaults. A section's defaults apply only to a part that has
// that section, except durability, which every primary gets; and the
// secondary-only keys (replication.protocol, keep_alive, read_timeout,
// idle_timeout, compression) go only to secondaries.
func merge(p, d *Part) {
	if p.DataDir == "" {
		p.DataDir = d.DataDir
	}
	if p.DataDir == "" {
		p.DataDir = DefaultDataDir
	}
	if p.User == "" {
		p.User = d.User
	}
	if p.User == "" {
		p.User = DefaultUser
	}
	if p.Path == "" && p.Name != "" {
		p.Path = path.Join(p.DataDir, p.Name, DataFile)
	}
	inherit(p, d, "log_level", &p.LogLevel, d.LogLevel)
	if p.LogLevel == "" {
		p.LogLevel = config.DefaultLogLevel
	}
	if p.ZEO != nil && d.ZEO != nil {
		inherit(p, d, "zeo.storage", &p.ZEO.Storage, d.ZEO.Storage)
		inherit(p, d, "zeo.msgpack", &p.ZEO.Msgpack, d.ZEO.Msgpack)
		inherit(p, d, "zeo.transaction_timeout", &p.ZEO.TransactionTimeout, d.ZEO.TransactionTimeout)
		inherit(p, d, "zeo.max_transaction_mb", &p.ZEO.MaxTransactionMB, d.ZEO.MaxTransactionMB)
		if _, set := p.lines["zeo.tls"]; !set && d.ZEO.TLS != nil {
			tls := *d.ZEO.TLS
			p.ZEO.TLS = &tls
		}
	}
	if p.Role == config.Secondary && d.Replication != nil {
		if p.Replication == nil {
			p.Replication = &config.Replication{}
		}
		inherit(p, d, "replication.protocol", &p.Replication.Protocol, d.Replication.Protocol)
		inherit(p, d, "replication.keep_alive", &p.Replication.KeepAlive, d.Replication.KeepAlive)
		inherit(p, d, "replication.read_timeout", &p.Replication.ReadTimeout, d.Replication.ReadTimeout)
		inherit(p, d, "replication.idle_timeout", &p.Replication.IdleTimeout, d.Replication.IdleTimeout)
		inherit(p, d, "replication.compression", &p.Replication.Compression, d.Replication.Compression)
	}
	if p.Role == config.Primary && d.Durability != nil {
		if p.Durability == nil {
			p.Durability = config.NewDurability()
		}
		inherit(p, d, "durability.level", &p.Durability.Level, d.Durability.Level)
		// A part made async among sync defaults takes none of their
		// sync settings (the daemon refuses them with level async).
		if p.Durability.Level == "sync" {
			inherit(p, d, "durability.quorum", &p.Durability.Quorum, d.Durability.Quorum)
			inherit(p, d, "durability.sync_timeout", &p.Durability.SyncTimeout, d.Durability.SyncTimeout)
			inherit(p, d, "durability.on_sync_timeout", &p.Durability.OnSyncTimeout, d.Durability.OnSyncTimeout)
		}
	}
}

// inherit sets *dst to val when the part leaves key out and the defaults
// section sets it.
func inherit[T any](p, d *Part, key string, dst *T, val T) {
	_, partSet := p.lines[key]
	_, defaultSet := d.lines[key]
	if !partSet && defaultSet {
		*dst = val
	}
}

// DaemonConfig is the part as the daemon config zrs run reads
// (/etc/zrs/NAME.yaml).
func (p *Part) DaemonConfig() *config.Config {
	c := p.Config
	return &c
}

// Line is the line of the part's key path (such as "zeo.address") in the
// site file, or of its nearest parent there.
func (p *Part) Line(key string) int {
	for key != "" {
		if l, ok := p.lines[key]; ok {
			return l
		}
		i := len(key) - 1
		for i >= 0 && key[i] != '.' {
			i--
		}
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return p.line
}

// Part returns the part called name, or nil.
func (s *Site) Part(name string) *Part {
	for _, p := range s.Parts {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (p *Part) String() string { return fmt.Sprintf("part %q", p.Name) }
