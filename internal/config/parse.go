package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes a config strictly (unknown or repeated keys, values of
// the wrong type and more than one document are errors), fills in the
// defaults and validates it. file names the source in errors.
func Parse(file string, data []byte) (*Config, error) {
	c, err := Decode(file, data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode is Parse without Validate: the file is well-formed YAML with
// known keys and values of the right types.
func Decode(file string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty config: want a mapping with name, role and path"}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "more than one YAML document: want one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	c := &Config{file: file, lines: map[string]int{}}
	c.defaults()
	w := walker{file: file, lines: c.lines}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if err := w.decode(root, reflect.ValueOf(c).Elem(), ""); err != nil {
		return nil, err
	}
	if err := crossCheck(file, data); err != nil {
		return nil, err
	}
	return c, nil
}

// crossCheck decodes again with yaml.v3's own strict decoder: whatever it
// refuses that the walker let through is still an error.
func crossCheck(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return yamlError(file, err)
	}
	return nil
}

// yamlError turns a yaml.v3 error into an *Error with its line.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d: ", &line); n == 1 {
		_, msg, _ = strings.Cut(msg, ": ")
	}
	return &Error{File: file, Line: line, Msg: msg}
}

// walker decodes a node tree into the config structs, by their yaml tags.
type walker struct {
	file  string
	lines map[string]int
}

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) error {
	return &Error{File: w.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

var durationType = reflect.TypeFor[time.Duration]()

// defaulter is a section with defaults for the keys a file leaves out.
type defaulter interface{ defaults() }

// decode sets v (a struct) from the mapping n; path is n's key path.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.errorf(n, path, "YAML aliases are not supported in a config")
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		what := "the file"
		if path != "" {
			what = "a section"
		}
		return w.errorf(n, path, "want a mapping of keys to values (%s), got %s", what, describe(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			return w.errorf(k, path, "want a key name, got %s", describe(k))
		}
		f, ok := fieldByTag(v, k.Value)
		if !ok {
			return w.errorf(k, key, "unknown field")
		}
		if seen[k.Value] {
			return w.errorf(k, key, "repeated key (first on line %d)", w.lines[key])
		}
		seen[k.Value] = true
		w.lines[key] = k.Line
		if err := w.value(val, f, key); err != nil {
			return err
		}
	}
	return nil
}

// value sets the field f from the node n.
func (w *walker) value(n *yaml.Node, f reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.errorf(n, path, "YAML aliases are not supported in a config")
	}
	switch {
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
		if isNull(n) {
			f.SetZero()
			return nil
		}
		p := reflect.New(f.Type().Elem())
		if d, ok := p.Interface().(defaulter); ok {
			d.defaults()
		}
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
		return nil
	case f.Kind() == reflect.String:
		if isNull(n) {
			f.SetString("")
			return nil
		}
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetString(n.Value)
		return nil
	case f.Kind() == reflect.Bool:
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetBool(b)
		return nil
	case f.Kind() == reflect.Int:
		var i int
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			return w.errorf(n, path, "want %s, got %s", want(f.Type()), describe(n))
		}
		f.SetInt(int64(i))
		return nil
	}
	return w.errorf(n, path, "internal error: no decoder for %s", f.Type())
}

// fieldByTag finds the field of struct v whose yaml key is name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		if key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ","); key == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

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
