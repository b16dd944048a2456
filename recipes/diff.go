package recipes

import (
	"fmt"
	"io"
	"strings"
)

// contextLines is how many unchanged lines a hunk shows around a change.
const contextLines = 3

// maxDiffCells bounds the LCS table: beyond it (files of thousands of
// lines, which the recipe never renders) the diff replaces the whole file.
const maxDiffCells = 4 << 20

// op is one line of an edit script: ' ' kept, '-' deleted, '+' inserted.
type op struct {
	kind byte
	line string // with its "\n", if it had one
}

// unifiedDiff writes the unified diff (as "diff -u" prints it) turning a
// into b, under the names from and to; nothing when they are equal.
//
// It is written here rather than taken from a library because the files
// are a few dozen lines, a longest-common-subsequence table is a screen
// of code, and the module keeps to the dependencies its design names.
func unifiedDiff(w io.Writer, from, to string, a, b []byte) {
	ops := editScript(splitLines(string(a)), splitLines(string(b)))
	hunks := hunkRanges(ops)
	if len(hunks) == 0 {
		return
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", from, to)
	for _, h := range hunks {
		writeHunk(w, ops, h[0], h[1])
	}
}

// splitLines splits s after each "\n"; a last line without one is kept.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// editScript is a shortest edit script from a to b, by the longest
// common subsequence of their lines.
func editScript(a, b []string) []op {
	n, m := len(a), len(b)
	if (n+1)*(m+1) > maxDiffCells {
		var ops []op
		for _, l := range a {
			ops = append(ops, op{'-', l})
		}
		for _, l := range b {
			ops = append(ops, op{'+', l})
		}
		return ops
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i]}) // deletions first, as diff -u
			i++
		default:
			ops = append(ops, op{'+', b[j]})
			j++
		}
	}
	return ops
}

// hunkRanges returns [start, end) ranges of ops to print: each change
// with up to contextLines kept lines around it, close ones merged.
func hunkRanges(ops []op) [][2]int {
	var out [][2]int
	for i, o := range ops {
		if o.kind == ' ' {
			continue
		}
		start, end := max(0, i-contextLines), min(len(ops), i+1+contextLines)
		if len(out) > 0 && start <= out[len(out)-1][1] {
			out[len(out)-1][1] = end
			continue
		}
		out = append(out, [2]int{start, end})
	}
	return out
}

// writeHunk writes ops[start:end] with its "@@ -l,s +l,s @@" header.
func writeHunk(w io.Writer, ops []op, start, end int) {
	aLine, bLine := 1, 1 // 1-based line numbers at ops[start]
	for _, o := range ops[:start] {
		if o.kind != '+' {
			aLine++
		}
		if o.kind != '-' {
			bLine++
		}
	}
	aLen, bLen := 0, 0
	for _, o := range ops[start:end] {
		if o.kind != '+' {
			aLen++
		}
		if o.kind != '-' {
			bLen++
		}
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aLine, aLen), hunkRange(bLine, bLen))
	for _, o := range ops[start:end] {
		fmt.Fprintf(w, "%c%s", o.kind, o.line)
		if !strings.HasSuffix(o.line, "\n") {
			fmt.Fprint(w, "\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange formats one side of a hunk header as diff -u does: "l,s", "l"
// for one line, and the line before for none.
func hunkRange(line, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", line-1)
	case 1:
		return fmt.Sprint(line)
	}
	return fmt.Sprintf("%d,%d", line, n)
}
