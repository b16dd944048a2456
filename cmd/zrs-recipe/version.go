package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version string

func runVersion(args []string, stdout io.Writer) error {
	if len(args) != 0 {
		return usagef("version takes no arguments")
	}
	_, err := fmt.Fprintf(stdout, "zrs-recipe %s\n", versionString())
	return err
}

// versionString is the -X version, else what the Go toolchain recorded.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && bi.Main.Version == "(devel)" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
		return bi.Main.Version
	}
	return "unknown"
}
