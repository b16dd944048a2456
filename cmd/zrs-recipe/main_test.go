package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not yet implemented") {
		t.Errorf("no args: code %d, stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--site") {
		t.Errorf("--help: code %d, stdout %q", code, out.String())
	}
}
