package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Render validates c and returns it as the YAML that Parse reads back to
// an equal Config: keys in the documented order, durations as "30s",
// optional sections and empty optional keys left out, two-space indents.
func Render(c *Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n, err := encode(reflect.ValueOf(c).Elem())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("render config %s: %w", c.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render config %s: %w", c.Name, err)
	}
	return buf.Bytes(), nil
}

// encode builds the mapping node of struct v.
func encode(v reflect.Value) (*yaml.Node, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for yf := range yamlFields(v.Type()) {
		f := v.Field(yf.index)
		if yf.opts == "omitempty" && f.IsZero() {
			continue
		}
		val, err := scalarOrMap(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", yf.key, err)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: yf.key}, val)
	}
	return m, nil
}

func scalarOrMap(f reflect.Value) (*yaml.Node, error) {
	scalar := func(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
	switch {
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
		if f.IsNil() {
			return scalar("!!null", "null"), nil
		}
		return encode(f.Elem())
	case f.Kind() == reflect.Pointer: // an optional scalar
		if f.IsNil() {
			return scalar("!!null", "null"), nil
		}
		return scalarOrMap(f.Elem())
	case f.Type() == durationType:
		return scalar("!!str", fmtDuration(f.Int())), nil
	case f.Kind() == reflect.String:
		return scalar("!!str", f.String()), nil
	case f.Kind() == reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(f.Bool())), nil
	case f.Kind() == reflect.Int:
		return scalar("!!int", strconv.FormatInt(f.Int(), 10)), nil
	}
	return nil, fmt.Errorf("no encoding for %s", f.Type())
}
