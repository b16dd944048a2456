// Command manpage writes the manual page of a zrs command, gzipped, from
// the command's own --help texts, so that "man zrs" says exactly what
// "zrs --help" and each "zrs COMMAND --help" say and cannot drift from
// them. `make package` runs it on the binaries it packages:
//
//	go run ./packaging/manpage -o zrs.1.gz -summary "..." -version V \
//	    -see-also "zrs-recipe(1)" -- bin/zrs "fs verify" "fs dump" primary ...
//
// The page has a NAME line, the top-level help as its DESCRIPTION and one
// subsection per command, each text kept as it is printed (no-fill mode),
// with roff's special characters escaped so that flags render as ASCII
// hyphen-minus and quotes as typed. It is written by hand: help2man
// expects GNU-style option lists and would reflow these texts, and no Go
// library renders preformatted text to roff.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "manpage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("manpage", flag.ContinueOnError)
	out := fl.String("o", "", "the page to write, gzipped (NAME.SECTION.gz)")
	summary := fl.String("summary", "", "the NAME line's description")
	version := fl.String("version", "", "the version shown in the page's footer")
	seeAlso := fl.String("see-also", "", "comma-separated SEE ALSO entries")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() < 1 || *out == "" || *summary == "" {
		return errors.New("usage: manpage -o NAME.1.gz -summary TEXT [-version V] [-see-also LIST] -- BINARY [COMMAND...]")
	}
	bin, cmds := fl.Arg(0), fl.Args()[1:]
	name := filepath.Base(bin)
	page := page{name: name, summary: *summary, version: *version}
	var err error
	if page.description, err = help(bin); err != nil {
		return err
	}
	for _, c := range cmds {
		text, err := help(bin, strings.Fields(c)...)
		if err != nil {
			return err
		}
		page.commands = append(page.commands, command{name: name + " " + c, help: text})
	}
	if *seeAlso != "" {
		page.seeAlso = strings.Split(*seeAlso, ",")
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // no name, no time: the same bytes each build
	if _, err := zw.Write(page.roff()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}

// help runs bin with args and --help and returns what it printed.
func help(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, append(args, "--help")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	text, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s --help: %v: %s", bin, strings.Join(args, " "), err, stderr.Bytes())
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return "", fmt.Errorf("%s %s --help printed nothing on stdout", bin, strings.Join(args, " "))
	}
	return string(text), nil
}

type page struct {
	name, summary, version string
	description            string
	commands               []command
	seeAlso                []string
}

type command struct{ name, help string }

// roff renders the page with the man macros.
func (p *page) roff() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH %s 1 \"\" %s \"User Commands\"\n", quote(strings.ToUpper(p.name)), quote(p.name+" "+p.version))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", escape(p.name), escape(p.summary))
	b.WriteString(".SH DESCRIPTION\n")
	preformatted(&b, p.description)
	if len(p.commands) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range p.commands {
			fmt.Fprintf(&b, ".SS %s\n", quote(c.name))
			preformatted(&b, c.help)
		}
	}
	if len(p.seeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range p.seeAlso {
			sep := ","
			if i == len(p.seeAlso)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s%s\n", escape(strings.TrimSpace(s)), sep)
		}
	}
	return b.Bytes()
}

// preformatted writes text in no-fill mode, each line as it is.
func preformatted(b *bytes.Buffer, text string) {
	b.WriteString(".nf\n")
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(escape(strings.ReplaceAll(line, "\t", "        ")))
		b.WriteByte('\n')
	}
	b.WriteString(".fi\n")
}

// escape makes s literal text for roff: backslashes, hyphens (which
// would render as typographic hyphens, breaking copied flags), quotes,
// non-ASCII characters, and a leading dot or apostrophe (a request).
func escape(s string) string {
	var b strings.Builder
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		b.WriteString(`\&`)
	}
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\e`)
		case '-':
			b.WriteString(`\-`)
		case '\'':
			b.WriteString(`\(aq`)
		case '`':
			b.WriteString(`\(ga`)
		case '"':
			b.WriteString(`\(dq`)
		case '~':
			b.WriteString(`\(ti`)
		case '^':
			b.WriteString(`\(ha`)
		default:
			if r > 0x7e {
				fmt.Fprintf(&b, `\[u%04X]`, r) // groff without preconv reads ASCII only
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// quote is s escaped as one macro argument.
func quote(s string) string { return `"` + escape(s) + `"` }
