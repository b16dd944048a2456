package main

import "testing"

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
		commands:    []command{{name: "zrs run", help: "Usage: zrs run --config FILE\n\tindented\n"}},
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
