package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/zrs-replication/zrs/recipes"
)

// runImport prints the site file equivalent to a Python ZEO config.
func runImport(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("zrs-recipe import", flag.ContinueOnError)
	fset.SetOutput(stderr)
	name := fset.String("name", recipes.DefaultImportName, "the part `NAME` (NAME-STORAGE for each of several storages)")
	fset.Usage = func() {
		io.WriteString(fset.Output(), importHelp)
		fmt.Fprintln(fset.Output(), "\nFlags:")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, args, stdout); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return usagef("import takes one zeo.conf file")
	}
	file := fset.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := recipes.Import(file, data, *name)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return err
	}
	if _, err := recipes.ParseSite("the imported site", out); err != nil {
		see := "edit the lines named below"
		if bytes.Contains(out, []byte("# NOTE ")) {
			see = "see its NOTE comments"
		}
		return fmt.Errorf("the imported site needs editing before zrs-recipe accepts it (%s):\n%w", see, err)
	}
	return nil
}
