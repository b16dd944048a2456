package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
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
			return usagef("%s: %v", fset.Name(), explainFlagError(fset, err))
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

// badValue matches the flag package's error for a value its type's Set
// refused ("invalid value "10" for flag -sync-timeout: parse error").
var badValue = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): `)

// explainFlagError replaces the flag package's "parse error" for a
// duration or a number with what the flag wants, as the config file's
// errors say it.
func explainFlagError(fset *flag.FlagSet, err error) error {
	m := badValue.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fset.Lookup(m[2])
	if f == nil {
		return err
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	val, uerr := strconv.Unquote(`"` + m[1] + `"`) // the flag package quoted it
	if uerr != nil {
		val = m[1]
	}
	if strings.HasSuffix(err.Error(), "value out of range") {
		return fmt.Errorf("--%s: %q is out of range", m[2], val)
	}
	switch g.Get().(type) {
	case time.Duration:
		return fmt.Errorf("--%s: want a duration with a unit, such as 30s or 1m30s, got %q", m[2], val)
	case int, int64, uint, uint64:
		return fmt.Errorf("--%s: want a whole number, got %q", m[2], val)
	case float64:
		return fmt.Errorf("--%s: want a number, got %q", m[2], val)
	case bool:
		return fmt.Errorf("--%s: want true or false, got %q", m[2], val)
	}
	return err
}
