package recipes

import (
	"fmt"
	"reflect"
	"strings"
	"time"

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

// walker decodes a yaml.v3 node tree into the site structs by their yaml
// tags, refusing unknown and repeated keys, and records the line of every
// key it sets (lines, relative to the part) so that merging can tell a key
// left out from a key set to its zero value, and errors can name lines.
type walker struct {
	file  string
	lines map[string]int // of the part being decoded; nil outside a part
	base  string         // key path of the part being decoded ("parts.main")
}

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) error {
	return &Error{File: w.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

var durationType = reflect.TypeFor[time.Duration]()

// mapping calls f for each key of the mapping n (at key path path),
// refusing aliases, non-scalar keys and repeated keys.
func (w *walker) mapping(n *yaml.Node, path string, f func(k, v *yaml.Node, key string) error) error {
	if n.Kind == yaml.AliasNode {
		return w.errorf(n, path, "YAML aliases are not supported in a site file")
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		what := "a section"
		if path == "" {
			what = "the file"
		}
		return w.errorf(n, path, "want a mapping of keys to values (%s), got %s", what, describe(n))
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return w.errorf(k, path, "want a key name, got %s", describe(k))
		}
		key := joinPath(path, k.Value)
		if l, ok := first[k.Value]; ok {
			return w.errorf(k, key, "repeated key (first on line %d)", l)
		}
		first[k.Value] = k.Line
		if err := f(k, v, key); err != nil {
			return err
		}
	}
	return nil
}

// decode sets the struct v from the mapping n at key path path.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) error {
	return w.mapping(n, path, func(k, val *yaml.Node, key string) error {
		if k.Value == "name" && v.Type() == reflect.TypeFor[Part]() {
			return w.errorf(k, key, "a part's name is its key under parts, not a field")
		}
		f, ok := fieldByTag(v, k.Value)
		if !ok {
			return w.errorf(k, key, "unknown field")
		}
		if w.lines != nil {
			w.lines[strings.TrimPrefix(key, w.base+".")] = k.Line
		}
		return w.value(val, f, key)
	})
}

// value sets the field f from the node n.
func (w *walker) value(n *yaml.Node, f reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.errorf(n, path, "YAML aliases are not supported in a site file")
	}
	switch {
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
		if isNull(n) {
			f.SetZero()
			return nil
		}
		p := newSection(f.Type().Elem())
		if err := w.decode(n, p.Elem(), path); err != nil {
			return err
		}
		f.Set(p)
		return nil
	case n.Kind != yaml.ScalarNode:
		return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
	case f.Type() == durationType:
		d, err := time.ParseDuration(n.Value)
		if err != nil || n.Tag != "!!str" {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		switch {
		case isNull(n):
			f.SetString("")
		case n.Tag == "!!str" || n.Tag == "!!int":
			f.SetString(n.Value)
		default:
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
	case f.Kind() == reflect.Bool:
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		var i int
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetInt(int64(i))
	default:
		return w.errorf(n, path, "internal error: no decoder for %s", f.Type())
	}
	return nil
}

// newSection returns a new section of type t holding the daemon config's
// defaults for the keys a file leaves out.
func newSection(t reflect.Type) reflect.Value {
	switch t {
	case reflect.TypeFor[config.ZEO]():
		return reflect.ValueOf(config.NewZEO(""))
	case reflect.TypeFor[config.Durability]():
		return reflect.ValueOf(config.NewDurability())
	}
	return reflect.New(t)
}

// fieldByTag finds the field of struct v whose yaml key is name, looking
// into inlined embedded structs.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" && sf.Type.Kind() == reflect.Struct {
			if f, ok := fieldByTag(v.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if key == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// want describes the values a field type accepts.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration with a unit, such as "0s", "30s" or "1m30s"`
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "an integer"
	}
	return "a mapping"
}

// describe names what a node holds, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing (null)"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected YAML node"
}

// yamlError turns a yaml.v3 syntax error into an *Error with its line.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d: ", &line); n == 1 {
		_, msg, _ = strings.Cut(msg, ": ")
	}
	return &Error{File: file, Line: line, Msg: msg}
}
