package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// zrs runs the command in-process and returns its exit code and output.
func zrs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := report(run(context.Background(), args, &env{stdout: &out, stderr: &errb}), &errb)
	return code, out.String(), errb.String()
}

const pyFS = "../../core/fs/testdata/pydump.fs"

func TestVersion(t *testing.T) {
	version = "v9.9.9-test"
	defer func() { version = "" }()
	code, out, _ := zrs(t, "version")
	if code != 0 || out != "zrs v9.9.9-test\n" {
		t.Errorf("code %d, out %q", code, out)
	}
	version = ""
	if code, out, _ := zrs(t, "version"); code != 0 || !strings.HasPrefix(out, "zrs ") {
		t.Errorf("fallback: code %d, out %q", code, out)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, _ := zrs(t, "--help")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, c := range []string{"fs verify", "fs dump", "version", "primary", "secondary", "run --config", "status", "promote", "Not yet available"} {
		if !strings.Contains(out, c) {
			t.Errorf("help lacks %q", c)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"fs"}, {"fs", "nope"}, {"fs", "verify"}, {"fs", "dump", "a", "b"},
		{"fs", "dump", "--bogus", "x"}, {"primary", "Data.fs"}, {"primary", "Data.fs", "--zeo", "8200", "--zeo-cert", "c.pem"},
		{"primary", "Data.fs", "--replicate-to", "8100", "--zeo-msgpack"}, {"primary", "Data.fs", "--zeo", "x:y"},
		{"secondary", "Data.fs", "--replicate-from", "8100", "--zeo", "8200", "--zeo-authenticate", "ca.pem"},
		{"secondary", "Data.fs", "--replicate-from", "8100", "--blob-dir", "b"}, {"secondary", "Data.fs", "--replicate-from", "x:y"},
		{"secondary", "Data.fs", "--replicate-from", "8100", "--replicate-to", "localhost:8100"}, {"status"}, {"status", "a", "b"}, {"promote"}, {"promote", "x:y"}, {"primary", "Data.fs", "--replicate-to", "8100", "--admin", "x:y"}, {"run"}, {"run", "--config", "a.yaml", "extra"}, {"run", "--bogus"}, {"secondary"},
		{"primary", "Data.fs", "--zeo", "8200", "--zeo-storage", ""}, {"primary", "Data.fs", "--zeo", "8200", "--zeo-storage", "a b"},
		{"primary", "Data.fs", "--replicate-to", "8100", "--zeo-storage", "main"},
		{"primary", "Data.fs", "--zeo", "8200", "--zeo-max-txn-mb", "0"}, {"primary", "Data.fs", "--zeo", "8200", "--zeo-max-txn-mb", "17592186044417"},
		{"primary", "Data.fs", "--zeo", "8200", "--durability", "sync"}, // no --replicate-to: no secondary could ever acknowledge
		{"primary", "Data.fs", "--replicate-to", "8100", "--zeo-transaction-timeout", "30s"}, {"primary", "Data.fs", "--replicate-to", "8100", "--zeo-max-txn-mb", "-1"},
		{"primary", "Data.fs", "--replicate-to", "8100", "--zeo-max-txn-mb", "1024"}, // the default, but given: still needs --zeo
		{"primary", "Data.fs", "--replicate-to", "8100", "--admin", "8300", "--metrics", "8301"},
		// sync settings without sync would change nothing (the missing
		// directory makes a start that should not happen fail at once)
		{"primary", "/none/Data.fs", "--replicate-to", "8100", "--quorum", "2"}, {"primary", "/none/Data.fs", "--replicate-to", "8100", "--durability", "async", "--sync-timeout", "1m"},
		{"primary", "/none/Data.fs", "--replicate-to", "8100", "--on-sync-timeout", "degrade"}} {
		code, _, errs := zrs(t, args...)
		if code != 2 || errs == "" {
			t.Errorf("%q: code %d, stderr %q", args, code, errs)
		}
	}
	if _, _, errs := zrs(t, "primary", "/none/Data.fs", "--replicate-to", "8100", "--quorum", "2"); !strings.Contains(errs, "--quorum applies to --durability sync only") {
		t.Errorf("--quorum without sync: %q", errs)
	}
	// The defaults, given (a script passing every flag), are harmless:
	// this start goes on, to fail on the missing directory.
	if code, _, errs := zrs(t, "primary", "/none/Data.fs", "--replicate-to", "8100", "--durability", "async", "--quorum", "1", "--sync-timeout", "5s", "--on-sync-timeout", "fail"); code != 1 || !strings.Contains(errs, "/none does not exist") {
		t.Errorf("sync flags at their defaults without sync: %d %q", code, errs)
	}
	if _, _, errs := zrs(t, "run"); !strings.Contains(errs, "run: --config FILE is required") {
		t.Errorf("run: %q", errs)
	}
	if code, out, _ := zrs(t, "fs", "verify", "--help"); code != 0 || !strings.Contains(out, "Usage: zrs fs verify") {
		t.Errorf("fs verify --help: %d %q", code, out)
	}
}

func TestFSVerify(t *testing.T) {
	code, out, errs := zrs(t, "fs", "verify", pyFS)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "transactions: 6") {
		t.Fatalf("code %d, out %q, stderr %q", code, out, errs)
	}
	b, err := os.ReadFile(pyFS)
	if err != nil {
		t.Fatal(err)
	}
	const txnPos = 504 // the third transaction
	b[txnPos+15]++     // tlen + 1: the trailer no longer matches
	bad := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = zrs(t, "fs", "verify", "--progress", bad)
	if code != 1 || !strings.Contains(errs, strconv.Itoa(txnPos)) {
		t.Fatalf("damaged: code %d, stderr %q", code, errs)
	}
	if code, _, _ := zrs(t, "fs", "verify", filepath.Join(t.TempDir(), "missing")); code != 1 {
		t.Errorf("missing file: code %d", code)
	}

	// A last transaction still voted (a live database's commit in
	// progress) is a note; --strict makes it a problem, as for fstest.
	b, _ = os.ReadFile(pyFS)
	last := int64(len(b)) - 8 - int64(binary.BigEndian.Uint64(b[len(b)-8:]))
	b[last+16] = 'c'
	voted := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(voted, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = zrs(t, "fs", "verify", voted)
	if code != 0 || !strings.Contains(out, "note:") || !strings.Contains(out, strconv.FormatInt(last, 10)) || !strings.Contains(out, "transactions: 5") {
		t.Errorf("voted last transaction: code %d, out %q, stderr %q", code, out, errs)
	}
	if code, _, errs := zrs(t, "fs", "verify", "--strict", voted); code != 1 || !strings.Contains(errs, "checkpoint flag") {
		t.Errorf("voted last transaction, --strict: code %d, stderr %q", code, errs)
	}
}

func TestFSDump(t *testing.T) {
	code, out, _ := zrs(t, "fs", "dump", pyFS, "--json")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	want, err := os.ReadFile("../../core/fs/testdata/pydump.fs.fsdump")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := zrs(t, "fs", "dump", pyFS); code != 0 || out != string(want) {
		t.Errorf("text dump: code %d\n%s", code, out)
	}
}

// A flag value its type refuses is explained as the config file explains
// it, not with the flag package's "parse error".
func TestFlagValueErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "10"}, `--timeout: want a duration with a unit, such as 30s or 1m30s, got "10"`},
		{[]string{"--count", "x"}, `--count: want a whole number, got "x"`},
		{[]string{"--count", "99999999999999999999"}, `--count: "99999999999999999999" is out of range`},
		{[]string{"--timeout", `10"s`}, `--timeout: want a duration with a unit, such as 30s or 1m30s, got "10\"s"`},
		{[]string{"--ratio", "y"}, `--ratio: want a number, got "y"`},
		{[]string{"--on=maybe"}, `--on: want true or false, got "maybe"`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		fset := flag.NewFlagSet("x", flag.ContinueOnError)
		fset.Duration("timeout", 0, "")
		fset.Int("count", 0, "")
		fset.Float64("ratio", 0, "")
		fset.Bool("on", false, "")
		err := parseFlags(fset, c.args, &env{stdout: io.Discard, stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "x: "+c.want) || strings.Contains(err.Error(), "parse error") {
			t.Errorf("%q: %v; want %q", c.args, err, c.want)
		}
	}
}

// Two flags that would listen on one endpoint are refused before anything
// is opened.
func TestFlagsListeningTwiceAreRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	for _, args := range [][]string{
		{"primary", filepath.Join(dir, "p.fs"), "--zeo", "8100", "--replicate-to", "127.0.0.1:8100"},
		{"primary", filepath.Join(dir, "p.fs"), "--zeo", sock, "--admin", sock},
		{"secondary", filepath.Join(dir, "s.fs"), "--replicate-from", "9", "--replicate-to", sock, "--metrics", sock},
	} {
		err := run(context.Background(), args, &env{stdout: io.Discard, stderr: io.Discard})
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "listen on the same address: give each its own") {
			t.Errorf("%q: %v; want a usage error", args, err)
		}
		if _, err := os.Stat(args[1]); err == nil {
			t.Errorf("%q: %s was created before the flags were checked", args, args[1])
		}
	}
}
