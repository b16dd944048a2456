package config

import (
	"strings"
	"testing"
)

// A YAML syntax error names its line, the first one included (yaml.v3
// leaves that one out).
func TestSyntaxErrorsNameTheirLine(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"this: is: not: yaml: [\n", "main.yaml:1: mapping values are not allowed in this context"},
		{"name: x\nthis: is: bad\n", "main.yaml:2: mapping values are not allowed in this context"},
		{"\"unterminated", "main.yaml:1: found unexpected end of stream"},
	} {
		_, err := Parse("main.yaml", []byte(c.text))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	// A reader error (bad UTF-8) has no line, wherever it is: not line 1.
	_, err := Parse("main.yaml", []byte("name: m\nrole: primary\npath: /d\nzeo: {address: 1}\nlog_level: \xff\n"))
	if err == nil || strings.HasPrefix(err.Error(), "main.yaml:1:") {
		t.Errorf("bad UTF-8 on line 5: %v", err)
	}
}

// Two keys that would listen on one endpoint are refused, naming both.
func TestListeningKeysMustDiffer(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"name: m\nrole: primary\npath: /d/Data.fs\nzeo: {address: 127.0.0.1:8100}\nreplication: {listen: 8100}\n",
			"main.yaml:5: replication.listen: 8100 is also zeo.address (line 4): give each its own address"},
		{"name: m\nrole: primary\npath: /d/Data.fs\nadmin: /run/a.sock\nzeo: {address: /run/a.sock}\n",
			"main.yaml:4: admin: /run/a.sock is also zeo.address (line 5): give each its own address"},
	} {
		_, err := Parse("main.yaml", []byte(c.text))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	if _, err := Parse("main.yaml", []byte("name: m\nrole: primary\npath: /d/Data.fs\nzeo: {address: 127.0.0.1:8100}\nreplication: {listen: 127.0.0.2:8100}\n")); err != nil {
		t.Errorf("two hosts, one port: %v", err)
	}
}
