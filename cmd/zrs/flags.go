package main

import (
	"errors"
	"flag"
	"io"
)

// parseFlags parses args with fset, allowing flags after positional
// arguments ("zrs fs dump PATH --json"); the positional arguments are
// left in fset.Args(). --help prints the command's usage on stdout and
// returns flag.ErrHelp (exit 0); a bad flag is a usage error.
func parseFlags(fset *flag.FlagSet, args []string, e *env) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fset.SetOutput(e.stdout)
			fset.Usage()
			return flag.ErrHelp
		}
	}
	fset.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fset.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usagef("%s: %v", fset.Name(), err)
		}
		args = fset.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	return fset.Parse(append([]string{"--"}, positional...))
}
