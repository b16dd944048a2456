package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"

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
	root, err := Document(file, data, "empty config: want a mapping with name, role and path")
	if err != nil {
		return nil, err
	}
	c := &Config{file: file, lines: map[string]int{}}
	c.defaults()
	w := Walker{File: file, What: "a config", FloatStrings: true,
		OnKey: func(k *yaml.Node, key string, _ reflect.Value) error {
			c.lines[key] = k.Line
			return nil
		}}
	if err := w.Decode(root, reflect.ValueOf(c).Elem(), ""); err != nil {
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
	} else if !strings.HasPrefix(err.Error(), "yaml: unmarshal errors") && !strings.Contains(msg, "UTF-8") &&
		!strings.Contains(msg, "control characters") {
		// (Reader errors — bad UTF-8, control characters — have no line
		// wherever they are.)
		// yaml.v3 leaves the line out of a syntax error only when its
		// position is the first line (a zero line number).
		line = 1
	}
	return &Error{File: file, Line: line, Msg: msg}
}
