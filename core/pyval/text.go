package pyval

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The two text forms of protocol 0: UNICODE ('V', raw-unicode-escape) and
// STRING ('S', a quoted Python 2 str literal).

// rawUnicodeEscape decodes a UNICODE line: bytes are latin-1 code points
// except \uXXXX and \UXXXXXXXX escapes. Surrogates are kept as
// surrogatepass UTF-8.
//
// As CPython's decoder, a backslash starts an escape only when it ends a
// run of an odd number of them: a line holding two backslashes and u0041
// decodes to those seven characters.
func rawUnicodeEscape(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			run := i
			for run < len(s) && s[run] == '\\' {
				run++
			}
			// All but an odd run's last backslash are literal.
			k := run - i
			if k%2 == 0 || run == len(s) || (s[run] != 'u' && s[run] != 'U') {
				b = append(b, s[i:run]...)
				i = run - 1
				continue
			}
			b = append(b, s[i:run-1]...)
			i = run - 1
		}
		if c == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(s) {
				return "", fmt.Errorf("truncated \\%c escape", s[i+1])
			}
			r, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32)
			if err != nil || r > utf8.MaxRune {
				return "", fmt.Errorf("bad \\%c escape %q", s[i+1], s[i+2:i+2+n])
			}
			b = appendPyRune(b, rune(r))
			i += 1 + n
			continue
		}
		b = utf8.AppendRune(b, rune(c))
	}
	return string(b), nil
}

// appendPyRune appends r as UTF-8, surrogates included (as CPython's
// surrogatepass writes them).
func appendPyRune(b []byte, r rune) []byte {
	if r >= 0xd800 && r <= 0xdfff {
		return append(b, 0xed, byte(0xa0|(r>>6)&0x1f), byte(0x80|r&0x3f))
	}
	return utf8.AppendRune(b, r)
}

// stringLiteral decodes a STRING line: a str literal in single or double
// quotes with Python 2's backslash escapes.
func stringLiteral(s string) (string, error) {
	if len(s) < 2 || s[0] != s[len(s)-1] || (s[0] != '\'' && s[0] != '"') {
		return "", fmt.Errorf("STRING is not quoted")
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case '\n':
		case '\\', '\'', '"':
			b = append(b, c)
		case 'a', 'b', 'f', 'n', 'r', 't', 'v':
			b = append(b, "\a\b\f\n\r\t\v"[strings.IndexByte("abfnrtv", c)])
		case 'x':
			if i+3 > len(s) {
				return "", fmt.Errorf("truncated \\x escape")
			}
			x, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape")
			}
			b = append(b, byte(x))
			i += 2
		default:
			if c >= '0' && c <= '7' {
				j := i + 1
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				o, _ := strconv.ParseUint(s[i:j], 8, 16)
				b = append(b, byte(o))
				i = j - 1
				continue
			}
			b = append(b, '\\', c)
		}
	}
	return string(b), nil
}
