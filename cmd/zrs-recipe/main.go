// Command zrs-recipe renders a site file (site.yaml) into per-storage zrs
// configurations and systemd units for every part it lists.
//
// Usage:
//
//	zrs-recipe [--site site.yaml] [--root DIR]
//
// This release only reserves the command: it prints that it is not yet
// implemented and exits with status 2.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

const notYet = "zrs-recipe: not yet implemented (renders site.yaml into configs and units in a later release)"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run returns the exit status: 0 for --help, 2 otherwise.
func run(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("zrs-recipe", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.String("site", "site.yaml", "the site file listing the parts")
	fset.String("root", "/", "the directory to render configs and units under")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "Usage: zrs-recipe [--site site.yaml] [--root DIR]\n\n"+
			"Render configs and systemd units for every part of a site file.\n%s\n\nFlags:\n", notYet)
		fset.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fset.SetOutput(stdout)
			fset.Usage()
			return 0
		}
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	fmt.Fprintln(stderr, notYet)
	return 2
}
