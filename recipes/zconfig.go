package recipes

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file reads the ZConfig syntax of Python ZEO configuration files
// (zeo.conf), as much of it as those files use: sections (<type name> ...
// </type>, nested), "key value" lines, comment lines, and the directives
// %import, %define (with $name and ${name} substitution) and %include
// (refused: the importer reads one file).

// zsection is one section of a ZConfig file; the file itself is a section
// with an empty Type.
type zsection struct {
	Type     string // lower case, as ZConfig compares section types
	Name     string // "" when the section has none
	Line     int
	Keys     []zkey
	Sections []*zsection
}

// zkey is one "key value" line.
type zkey struct {
	Name  string // lower case, as ZConfig compares keys
	Value string // $-substitutions done, surrounding blanks trimmed
	Line  int
}

// zfile is a parsed ZConfig file.
type zfile struct {
	Root    *zsection
	Imports []zkey // each %import, Value the package
}

// ZConfigError is a ZConfig syntax error, with its line.
type ZConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ZConfigError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// parseZConfig parses the ZConfig text data, naming file in errors.
func parseZConfig(file string, data []byte) (*zfile, error) {
	p := &zparser{file: file, defines: map[string]zdefine{}}
	f := &zfile{Root: &zsection{Line: 1}}
	stack := []*zsection{f.Root}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		p.line = line
		if err := p.checkText(sc.Text()); err != nil {
			return nil, err
		}
		text := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		cur := stack[len(stack)-1]
		switch {
		case text == "" || text[0] == '#':
		case strings.HasPrefix(text, "</"):
			typ, err := p.closing(text)
			if err != nil {
				return nil, err
			}
			if len(stack) == 1 {
				return nil, p.errorf("</%s> closes no open section", typ)
			}
			if typ != cur.Type {
				return nil, p.errorf("</%s> does not close <%s> (opened on line %d)", typ, cur.Type, cur.Line)
			}
			stack = stack[:len(stack)-1]
		case text[0] == '<':
			s, err := p.opening(text)
			if err != nil {
				return nil, err
			}
			cur.Sections = append(cur.Sections, s)
			stack = append(stack, s)
		case text[0] == '%':
			if err := p.directive(f, text, len(stack) == 1); err != nil {
				return nil, err
			}
		default:
			k, err := p.key(text)
			if err != nil {
				return nil, err
			}
			cur.Keys = append(cur.Keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ZConfigError{File: file, Line: p.line + 1, Msg: err.Error()}
	}
	if len(stack) > 1 {
		s := stack[len(stack)-1]
		return nil, &ZConfigError{File: file, Line: s.Line, Msg: fmt.Sprintf("<%s> is never closed", s.Type)}
	}
	return f, nil
}

type zparser struct {
	file    string
	line    int
	defines map[string]zdefine
}

// zdefine is the value of a %define, and its line.
type zdefine struct {
	value string
	line  int
}

func (p *zparser) errorf(format string, args ...any) error {
	return &ZConfigError{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

// checkText refuses what no configuration holds and the site file could
// not carry: bytes that are not UTF-8, and characters YAML does not allow
// or reads as line breaks (control characters, U+2028, U+2029, ...). A
// byte order mark may open the file, a carriage return end a line.
func (p *zparser) checkText(s string) error {
	if !utf8.ValidString(s) {
		return p.errorf("not valid UTF-8 text")
	}
	for i, r := range s {
		switch {
		case r == '\t', r == '\r' && i == len(s)-1, r == 0xfeff && i == 0 && p.line == 1:
		case unicode.IsControl(r), r == 0x2028, r == 0x2029, r == 0xfeff, r == 0xfffe, r == 0xffff:
			return p.errorf("character %U at byte %d of the line is not allowed", r, i+1)
		}
	}
	return nil
}

// opening parses "<type>" or "<type name>".
func (p *zparser) opening(text string) (*zsection, error) {
	if !strings.HasSuffix(text, ">") {
		return nil, p.errorf("malformed section header %q: want <type> or <type name>", text)
	}
	inner := strings.TrimSpace(text[1 : len(text)-1])
	if strings.HasSuffix(inner, "/") {
		return nil, p.errorf("empty-element section %q is not supported: write <type> ... </type>", text)
	}
	fields := strings.Fields(inner)
	if len(fields) == 0 || len(fields) > 2 || !isZName(fields[0]) {
		return nil, p.errorf("malformed section header %q: want <type> or <type name>", text)
	}
	s := &zsection{Type: strings.ToLower(fields[0]), Line: p.line}
	if len(fields) == 2 {
		name, err := p.substitute(fields[1])
		if err != nil {
			return nil, err
		}
		s.Name = name
	}
	return s, nil
}

// closing parses "</type>".
func (p *zparser) closing(text string) (string, error) {
	if !strings.HasSuffix(text, ">") {
		return "", p.errorf("malformed section end %q: want </type>", text)
	}
	typ := strings.TrimSpace(text[2 : len(text)-1])
	if !isZName(typ) {
		return "", p.errorf("malformed section end %q: want </type>", text)
	}
	return strings.ToLower(typ), nil
}

// directive handles %import, %define and %include. Like ZConfig, it
// takes any blanks (spaces or tabs) between the words.
func (p *zparser) directive(f *zfile, text string, top bool) error {
	name, arg := cutBlank(text[1:])
	switch strings.ToLower(name) {
	case "import":
		if arg == "" || strings.ContainsAny(arg, " \t") {
			return p.errorf("%%import needs one package name")
		}
		f.Imports = append(f.Imports, zkey{Name: "import", Value: arg, Line: p.line})
	case "define":
		dname, val := cutBlank(arg)
		if !isZName(dname) {
			return p.errorf("%%define needs a name, then its value")
		}
		written := dname
		dname = strings.ToLower(dname)
		v, err := p.substitute(val)
		if err != nil {
			return err
		}
		// ZConfig accepts the same definition again, and refuses another
		// value.
		if d, ok := p.defines[dname]; ok {
			if d.value == v {
				return nil
			}
			return p.errorf("%%define %s %q: already defined as %q on line %d (ZConfig allows no redefinition): keep one of the two", written, v, d.value, d.line)
		}
		p.defines[dname] = zdefine{value: v, line: p.line}
	case "include":
		return p.errorf("%%include is not supported: paste the included file in place and import again")
	default:
		return p.errorf("unknown directive %%%s (want %%import, %%define or %%include)", name)
	}
	return nil
}

// cutBlank splits s at its first run of blanks (spaces or tabs): the
// first word, and the rest with surrounding blanks trimmed.
func cutBlank(s string) (string, string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// key parses "key value", substituting $names in the value. A blank
// followed by '#' starts a trailing comment, which is dropped (the zc.zrs
// documentation annotates its examples so).
func (p *zparser) key(text string) (zkey, error) {
	name, val := text, ""
	if i := strings.IndexAny(text, " \t"); i >= 0 {
		name, val = text[:i], text[i+1:]
	}
	if !isZName(name) {
		return zkey{}, p.errorf("malformed line %q: want \"key value\"", text)
	}
	val = strings.TrimSpace(val)
	if i := strings.Index(val, " #"); i >= 0 {
		val = strings.TrimSpace(val[:i])
	}
	if i := strings.Index(val, "\t#"); i >= 0 {
		val = strings.TrimSpace(val[:i])
	}
	v, err := p.substitute(val)
	if err != nil {
		return zkey{}, err
	}
	return zkey{Name: strings.ToLower(name), Value: v, Line: p.line}, nil
}

// substitute replaces $name and ${name} with %define'd values, and $$
// with $. ZConfig's $(NAME), the environment variable NAME, is refused:
// what the environment held when runzeo started is not known here.
func (p *zparser) substitute(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		var name string
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i++
			continue
		case strings.HasPrefix(rest, "("):
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return "", p.errorf("unclosed $( in %q", s)
			}
			env := rest[1:end]
			return "", p.errorf("$(%s) is an environment variable (ZConfig reads $(NAME) from the environment runzeo started in), which zrs-recipe import does not read: replace $(%s) with its value, or add \"%%define %s VALUE\" and write $%s", env, env, env, env)
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", p.errorf("unclosed ${ in %q", s)
			}
			name = rest[1:end]
			i += end + 1
		default:
			n := 0
			for n < len(rest) && isZNameByte(rest[n]) {
				n++
			}
			name = rest[:n]
			i += n
		}
		if name == "" {
			return "", p.errorf("'$' not followed by a name in %q: write $$ for a dollar sign, $NAME or ${NAME} for a %%define'd value", s)
		}
		d, ok := p.defines[strings.ToLower(name)]
		if !ok {
			return "", p.errorf("$%s is not %%define'd: add \"%%define %s VALUE\" before this line (or write $$ for a dollar sign)", name, name)
		}
		b.WriteString(d.value)
	}
	return b.String(), nil
}

func isZName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isZNameByte(s[i]) && s[i] != '-' && s[i] != '.' {
			return false
		}
	}
	return true
}

func isZNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// key returns the last value of key name in s, and whether it is there.
func (s *zsection) key(name string) (zkey, bool) {
	var k zkey
	found := false
	for _, x := range s.Keys {
		if x.Name == name {
			k, found = x, true
		}
	}
	return k, found
}
