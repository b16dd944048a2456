package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Document returns the root node of the one YAML document in data. empty
// is the message for a file with no document; more than one is an error.
func Document(file string, data []byte, empty string) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: empty}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "more than one YAML document: want one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

// Walker decodes a yaml.v3 node tree into structs by their yaml tags,
// strictly: unknown and repeated keys, aliases and values of the wrong
// type are *Error values naming the line and the key path. yaml.v3's own
// strict decoding names neither the key path nor every line, which is why
// the daemon config and the recipe's site file both go through this.
// Sections of this package's types start from their defaults.
type Walker struct {
	File string
	// What the file is, for messages ("a config", "a site file").
	What string
	// FloatStrings accepts a YAML float where a string is wanted.
	FloatStrings bool
	// OnKey, if set, is called for each key of a struct (key is its full
	// path) before the key is looked up; an error stops the walk.
	OnKey func(k *yaml.Node, key string, v reflect.Value) error
}

// Errorf returns an *Error at node n and key path path.
func (w *Walker) Errorf(n *yaml.Node, path, format string, args ...any) error {
	return &Error{File: w.File, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

var durationType = reflect.TypeFor[time.Duration]()

// defaulter is a section with defaults for the keys a file leaves out.
type defaulter interface{ defaults() }

// Mapping calls f for each key of the mapping n (at key path path),
// refusing aliases, non-scalar keys and repeated keys. A null node is an
// empty mapping.
func (w *Walker) Mapping(n *yaml.Node, path string, f func(k, v *yaml.Node, key string) error) error {
	if n.Kind == yaml.AliasNode {
		return w.Errorf(n, path, "YAML aliases are not supported in %s", w.What)
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		what := "a section"
		if path == "" {
			what = "the file"
		}
		return w.Errorf(n, path, "want a mapping of keys to values (%s), got %s", what, describe(n))
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return w.Errorf(k, path, "want a key name, got %s", describe(k))
		}
		key := joinPath(path, k.Value)
		if l, ok := first[k.Value]; ok {
			return w.Errorf(k, key, "repeated key (first on line %d)", l)
		}
		first[k.Value] = k.Line
		if err := f(k, v, key); err != nil {
			return err
		}
	}
	return nil
}

// Decode sets the struct v from the mapping n at key path path.
func (w *Walker) Decode(n *yaml.Node, v reflect.Value, path string) error {
	return w.Mapping(n, path, func(k, val *yaml.Node, key string) error {
		if w.OnKey != nil {
			if err := w.OnKey(k, key, v); err != nil {
				return err
			}
		}
		f, ok := fieldByTag(v, k.Value)
		if !ok {
			return w.Errorf(k, key, "unknown field")
		}
		return w.value(val, f, key)
	})
}

// value sets the field f from the node n.
func (w *Walker) value(n *yaml.Node, f reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.Errorf(n, path, "YAML aliases are not supported in %s", w.What)
	}
	bad := func() error { return w.Errorf(n, path, "want %s, got %s", want(f.Type()), describe(n)) }
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
		if err := w.Decode(n, p.Elem(), path); err != nil {
			return err
		}
		f.Set(p)
	case f.Kind() == reflect.Pointer: // an optional scalar: nil when unset
		if isNull(n) {
			f.SetZero()
			return nil
		}
		p := reflect.New(f.Type().Elem())
		if err := w.value(n, p.Elem(), path); err != nil {
			return err
		}
		f.Set(p)
	case n.Kind != yaml.ScalarNode:
		return bad()
	case f.Type() == durationType:
		d, err := time.ParseDuration(n.Value)
		if err != nil || n.Tag != "!!str" {
			return bad()
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		switch {
		case isNull(n):
			f.SetString("")
		case n.Tag == "!!str" || n.Tag == "!!int" || (w.FloatStrings && n.Tag == "!!float"):
			f.SetString(n.Value)
		default:
			return bad()
		}
	case f.Kind() == reflect.Bool:
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			return bad()
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		var i int
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			return bad()
		}
		f.SetInt(int64(i))
	default:
		return w.Errorf(n, path, "internal error: no decoder for %s", f.Type())
	}
	return nil
}

// yamlField is an exported field of a config struct and its yaml tag.
type yamlField struct {
	index     int
	key, opts string // the tag's name and what follows its first comma
	inline    bool   // an embedded struct whose keys are the parent's
}

// yamlFields yields the exported fields of struct type t, in order.
func yamlFields(t reflect.Type) iter.Seq[yamlField] {
	return func(yield func(yamlField) bool) {
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			key, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !yield(yamlField{i, key, opts, opts == "inline" && sf.Type.Kind() == reflect.Struct}) {
				return
			}
		}
	}
}

// fieldByTag finds the field of struct v whose yaml key is name, looking
// into inlined embedded structs.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	for yf := range yamlFields(v.Type()) {
		if yf.inline {
			if f, ok := fieldByTag(v.Field(yf.index), name); ok {
				return f, true
			}
			continue
		}
		if yf.key == name {
			return v.Field(yf.index), true
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
