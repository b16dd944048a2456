// Command zrs-recipe renders a site file (site.yaml) into the daemon
// configs and systemd units of every storage it lists, and imports Python
// ZEO configurations into site files.
//
// Usage:
//
//	zrs-recipe [--site FILE] [--root DIR] [--dry-run] [--force] [--systemctl]
//	zrs-recipe import [--name NAME] ZEO.CONF
//	zrs-recipe version
//
// The work is done by package recipes; this command parses flags, prints
// and maps errors to exit codes: 0 success, 1 failure (a bad site file, a
// refused change), 2 usage error. "zrs-recipe --help" explains it all.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run dispatches to a subcommand and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "import":
		err = runImport(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "version":
		err = runVersion(args[1:], stdout)
	case len(args) > 0 && args[0] == "help":
		io.WriteString(stdout, helpText)
	default:
		err = runRender(args, stdout, stderr)
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "zrs-recipe: %v\nRun \"zrs-recipe --help\" for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "zrs-recipe: %v\n", err)
	return exitFailure
}

// parseFlags parses args, sending --help to stdout.
func parseFlags(fset *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fset.SetOutput(stdout)
			fset.Usage()
			return flag.ErrHelp
		}
	}
	// A bad flag is one line and a pointer to --help, not the whole help.
	out := fset.Output()
	fset.SetOutput(io.Discard)
	defer fset.SetOutput(out)
	if err := fset.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	return nil
}
