package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version string

// runVersion prints the version.
func runVersion(_ context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("zrs version", flag.ContinueOnError)
	fset.SetOutput(e.stderr)
	fset.Usage = func() { fmt.Fprintln(fset.Output(), "Usage: zrs version\n\nPrint the zrs version.") }
	if err := parseFlags(fset, args, e); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		return usagef("version takes no arguments")
	}
	_, err := fmt.Fprintf(e.stdout, "zrs %s\n", versionString())
	return err
}

// versionString is the -X version, else what the Go toolchain recorded:
// the module version, or the VCS revision for a development build.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" {
		return "(devel)"
	}
	return v
}
