package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/zrs-replication/zrs/recipes"
)

// defaultSite is where the packages' documentation puts the site file.
const defaultSite = "/etc/zrs/site.yaml"

// runRender renders the site file into the root: zrs-recipe's main job.
func runRender(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("zrs-recipe", flag.ContinueOnError)
	fset.SetOutput(stderr)
	site := fset.String("site", defaultSite, "the site `FILE` listing the parts")
	root := fset.String("root", "/", "render under `DIR` (a staging tree) instead of /")
	dry := fset.Bool("dry-run", false, "print the unified diff of what would change; write nothing")
	force := fset.Bool("force", false, "overwrite or remove files edited by hand or not written by zrs-recipe")
	systemctl := fset.Bool("systemctl", false, "run the systemctl commands (disable removed units first, then daemon-reload, enable, restart) instead of printing them")
	fset.Usage = func() {
		io.WriteString(fset.Output(), helpText)
		fmt.Fprintln(fset.Output(), "\nFlags:")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, args, stdout); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		return usagef("unexpected argument %q (the site file is given with --site; did you mean \"zrs-recipe import\"?)", fset.Arg(0))
	}
	o := recipes.Options{Root: *root, DryRun: *dry, Force: *force, Out: stdout}
	if *systemctl {
		if abs, _ := filepath.Abs(*root); abs != "/" {
			return usagef("--systemctl manages the running system: it needs --root / (got %s)", *root)
		}
		if *dry {
			return usagef("--systemctl and --dry-run together: a dry run runs nothing")
		}
		o.Systemctl = []string{"systemctl"}
	}
	s, err := recipes.LoadSite(*site)
	if err != nil {
		return err
	}
	res, err := recipes.Apply(s, o)
	var conflict *recipes.ConflictError
	if err == nil || *dry && errors.As(err, &conflict) {
		// A refused dry run still shows its diff: the conflicts are in it.
		res.Report(stdout, o)
	}
	return err
}
