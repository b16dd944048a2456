package recipes

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The diff matches GNU diff -u (below its two header lines) on edits
// with one right answer.
func TestUnifiedDiffMatchesDiffU(t *testing.T) {
	lines := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i) + "\n")
		}
		return b.String()
	}
	base := lines(20, func(i int) string { return "line " + strconv.Itoa(i) })
	for name, tc := range map[string][2]string{
		"change":        {base, strings.Replace(base, "line 10\n", "line ten\n", 1)},
		"two hunks":     {base, strings.Replace(strings.Replace(base, "line 2\n", "", 1), "line 17\n", "line 17\nextra\n", 1)},
		"merged hunks":  {base, strings.Replace(strings.Replace(base, "line 5\n", "five\n", 1), "line 9\n", "nine\n", 1)},
		"append":        {base, base + "tail\n"},
		"from nothing":  {"", "a\nb\n"},
		"to nothing":    {"a\nb\n", ""},
		"no newline":    {"a\nb\n", "a\nb"},
		"first line":    {base, "head\n" + base[len("line 0\n"):]},
		"one line file": {"x\n", "y\n"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(a, []byte(tc[0]), 0o644)
			os.WriteFile(b, []byte(tc[1]), 0o644)
			want, _ := exec.Command("diff", "-u", a, b).Output() // exit 1: they differ
			_, wantBody, _ := strings.Cut(string(want), "\n+++ ")
			_, wantBody, _ = strings.Cut(wantBody, "\n")
			var got bytes.Buffer
			unifiedDiff(&got, "a", "b", []byte(tc[0]), []byte(tc[1]))
			gotBody := strings.TrimPrefix(got.String(), "--- a\n+++ b\n")
			if gotBody != wantBody {
				t.Errorf("got:\n%s\ndiff -u:\n%s", gotBody, wantBody)
			}
		})
	}
	var none bytes.Buffer
	unifiedDiff(&none, "a", "b", []byte(base), []byte(base))
	if none.Len() != 0 {
		t.Errorf("equal files: %q", none.String())
	}
}

// Applying the diff to the old text gives the new one, for random edits.
func TestUnifiedDiffApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var a, b []string
		for range r.IntN(30) {
			a = append(a, strconv.Itoa(r.IntN(6))+"\n")
		}
		for _, l := range a {
			switch r.IntN(5) {
			case 0: // drop
			case 1:
				b = append(b, l, "new\n")
			case 2:
				b = append(b, strconv.Itoa(r.IntN(6))+"\n")
			default:
				b = append(b, l)
			}
		}
		old, nw := strings.Join(a, ""), strings.Join(b, "")
		var d bytes.Buffer
		unifiedDiff(&d, "a", "b", []byte(old), []byte(nw))
		if got := applyDiff(t, old, d.String()); got != nw {
			t.Fatalf("old:\n%s\nnew:\n%s\ndiff:\n%s\napplied:\n%s", old, nw, d.String(), got)
		}
	}
}

// applyDiff applies a unified diff of whole lines (no "\ No newline"),
// checking each hunk's header as patch does: its start in the old text
// and in the new one, and its line counts.
func applyDiff(t *testing.T, old, diff string) string {
	if diff == "" {
		return old
	}
	src := splitLines(old)
	var out []string
	pos := 0 // next line of src to copy
	var header string
	var wantOld, wantNew, gotOld, gotNew int
	endHunk := func() {
		if header != "" && (gotOld != wantOld || gotNew != wantNew) {
			t.Fatalf("hunk %q holds %d old and %d new lines", header, gotOld, gotNew)
		}
	}
	for _, l := range splitLines(diff)[2:] {
		switch l[0] {
		case '@':
			endHunk()
			header = strings.TrimSuffix(l, "\n")
			fields := strings.Fields(l)
			if len(fields) != 4 || fields[0] != "@@" || fields[3] != "@@" || fields[1][0] != '-' || fields[2][0] != '+' {
				t.Fatalf("bad hunk header %q", header)
			}
			var a, c int
			a, wantOld = parseHunkRange(t, fields[1][1:])
			c, wantNew = parseHunkRange(t, fields[2][1:])
			gotOld, gotNew = 0, 0
			if wantOld == 0 {
				a++ // an empty range names the line before it
			}
			if a-1 < pos || a-1 > len(src) {
				t.Fatalf("hunk %q starts at old line %d; the last hunk ended at %d", header, a, pos)
			}
			for ; pos < a-1; pos++ {
				out = append(out, src[pos])
			}
			if wantNew == 0 {
				c++
			}
			if c-1 != len(out) {
				t.Fatalf("hunk %q starts at new line %d; it is line %d", header, c, len(out)+1)
			}
		case ' ':
			if src[pos] != l[1:] {
				t.Fatalf("context %q does not match line %d %q", l, pos+1, src[pos])
			}
			out = append(out, src[pos])
			pos++
			gotOld++
			gotNew++
		case '-':
			if src[pos] != l[1:] {
				t.Fatalf("deletion %q does not match line %d %q", l, pos+1, src[pos])
			}
			pos++
			gotOld++
		case '+':
			out = append(out, l[1:])
			gotNew++
		default:
			t.Fatalf("line %q in a hunk", l)
		}
	}
	endHunk()
	return strings.Join(append(out, src[pos:]...), "")
}

// parseHunkRange parses "l,s" or "l" (a count of 1) from a hunk header.
func parseHunkRange(t *testing.T, r string) (line, count int) {
	l, s, ok := strings.Cut(r, ",")
	line, err := strconv.Atoi(l)
	if err != nil {
		t.Fatalf("hunk range %q: %v", r, err)
	}
	if !ok {
		return line, 1
	}
	if count, err = strconv.Atoi(s); err != nil {
		t.Fatalf("hunk range %q: %v", r, err)
	}
	return line, count
}
