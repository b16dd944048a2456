package recipes

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/zrs-replication/zrs/internal/config"
)

// Error is one mistake in a site file (or in what the recipe found on
// disk): the file, the line, the key path and what is wrong. It is the
// daemon config's error type, so both files report mistakes alike:
// "site.yaml:12: parts.main.zeo.adress: unknown field".
type Error = config.Error

// Errors is every mistake found, in file order.
type Errors = config.Errors

// walker is the daemon config's strict walker (config.Walker: unknown and
// repeated keys refused, errors naming line and key path, sections
// starting from the daemon's defaults) set up for a site file. It refuses
// a "name" key in a part and records the line of every key it sets
// (lines, relative to the part) so that merging can tell a key left out
// from a key set to its zero value, and errors can name lines.
type walker struct {
	config.Walker
	lines map[string]int // of the part being decoded; nil outside a part
	base  string         // key path of the part being decoded ("parts.main")
}

func newWalker(file string) *walker {
	w := &walker{}
	w.Walker = config.Walker{File: file, What: "a site file", OnKey: w.onKey}
	return w
}

func (w *walker) onKey(k *yaml.Node, key string, v reflect.Value) error {
	if k.Value == "name" && v.Type() == reflect.TypeFor[Part]() {
		return w.Errorf(k, key, "a part's name is its key under parts, not a field")
	}
	if w.lines != nil {
		w.lines[strings.TrimPrefix(key, w.base+".")] = k.Line
	}
	return nil
}
