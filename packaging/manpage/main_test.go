package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Text reaches roff literally: a hyphen as \- (a plain one renders as
// U+2010 outside Debian, and a copied flag then fails), quotes and
// backslashes as glyphs, non-ASCII as \[uXXXX] (groff without preconv
// reads ASCII only), and a line starting with a dot or an apostrophe is
// not taken for a request.
func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"--zeo ADDR", `\-\-zeo ADDR`},
		{`ZODB's "c" \n`, `ZODB\(aqs \(dqc\(dq \en`},
		{"`x` ~/a^b", `\(gax\(ga \(ti/a\(hab`},
		{".fs file", `\&.fs file`},
		{"'quoted'", `\&\(aqquoted\(aq`},
		{"zrs — ok", `zrs \[u2014] ok`},
		{"plain text", "plain text"},
	} {
		if got := escape(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The page: NAME, the top-level help as DESCRIPTION, one subsection per
// command with its help kept line by line in no-fill mode (tabs as
// spaces: roff has tab stops of its own), SEE ALSO.
func TestRoff(t *testing.T) {
	p := page{name: "zrs", summary: "replication", version: "v1",
		description: "Usage:\n  zrs <command>\n\n.dot\n",
		commands:    []command{{name: "zrs run", help: "  Usage: zrs run --config FILE\n\tindented\n"}},
		seeAlso:     []string{"zrs-recipe(1)", " zrs(7)"}}
	want := `.TH "ZRS" 1 "" "zrs v1" "User Commands"
.SH NAME
zrs \- replication
.SH DESCRIPTION
.nf
Usage:
  zrs <command>

\&.dot
.fi
.SH COMMANDS
.SS "zrs run"
.nf
  Usage: zrs run \-\-config FILE
        indented
.fi
.SH SEE ALSO
zrs\-recipe(1),
zrs(7)
`
	if got := string(p.roff()); got != want {
		t.Errorf("roff:\n%s\nwant:\n%s", got, want)
	}
}

// fakeTool writes a program that prints a help text of its own for each
// command it knows (its words given as separate arguments), nothing for "empty", and fails for "fails".
func fakeTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tool")
	script := `#!/bin/sh
case "$#:$*" in
"1:--help") printf 'Usage: tool <command>\n  -x  an option\n' ;;
"3:fs verify --help") printf 'Usage: tool fs verify PATH\n' ;;
"2:run --help") printf 'Usage: tool run\n\tindented\n' ;;
"2:empty --help") ;;
"2:fails --help") echo "no such command" >&2; exit 2 ;;
*) echo "unexpected arguments: $*" >&2; exit 3 ;;
esac
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// run asks the binary for each command's help, with the command's words
// as separate arguments, and writes the gzipped page of exactly those
// texts.
func TestRun(t *testing.T) {
	bin := fakeTool(t)
	out := filepath.Join(t.TempDir(), "tool.1.gz")
	err := run([]string{"-o", out, "-summary", "a tool", "-version", "v2", "-see-also", "zrs(1),zrs-recipe(1)",
		"--", bin, "fs verify", "run"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	want := page{name: "tool", summary: "a tool", version: "v2",
		description: "Usage: tool <command>\n  -x  an option\n",
		commands: []command{
			{name: "tool fs verify", help: "Usage: tool fs verify PATH\n"},
			{name: "tool run", help: "Usage: tool run\n\tindented\n"},
		},
		seeAlso: []string{"zrs(1)", "zrs-recipe(1)"}}
	if string(got) != string(want.roff()) {
		t.Errorf("page:\n%s\nwant:\n%s", got, want.roff())
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", out, "-summary", "s", "--", bin, "empty"}, "tool empty --help printed nothing"},
		{[]string{"-o", out, "-summary", "s", "--", bin, "fails"}, "no such command"},
		{[]string{"-o", out, "--", bin}, "usage: manpage"},
		{[]string{"-summary", "s", "--", bin}, "usage: manpage"},
		{[]string{"-o", out, "-summary", "s"}, "usage: manpage"},
	} {
		if err := run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q: %v; want %q", c.args, err, c.want)
		}
	}
}
