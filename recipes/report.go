package recipes

import (
	"fmt"
	"io"
	"strings"
)

// Report writes what a run did (or, dry, would do) for people: each file
// changed, then the systemctl commands to run next; "no changes" when
// there was nothing to do. A dry run writes the unified diff of every
// change instead of the list.
func (r *Result) Report(w io.Writer, o Options) {
	root := o.Root
	if root == "" {
		root = "/"
	}
	if r.NoChange {
		fmt.Fprintf(w, "zrs-recipe: no changes (%d files up to date under %s)\n", r.Kept, root)
		return
	}
	if o.DryRun {
		r.diff(w, root)
		fmt.Fprintf(w, "zrs-recipe: dry run: %s; nothing written\n", r.summary())
	} else {
		for _, c := range r.Changes {
			fmt.Fprintf(w, "%-8s %s%s\n", past(c.Action), c.Path, forced(c, o))
		}
		fmt.Fprintf(w, "zrs-recipe: %s under %s\n", r.summary(), root)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "Note: %s\n", n)
		}
	}
	cmds := r.After
	if o.Systemctl != nil {
		return // already run, and echoed as they ran
	}
	if len(cmds) == 0 {
		return
	}
	if o.DryRun {
		fmt.Fprintln(w, "\nThen, as root, it would take:")
	} else {
		fmt.Fprintln(w, "\nNext, as root (or run zrs-recipe with --systemctl):")
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s\n", strings.Join(c, " "))
	}
}

// diff writes the unified diff of every change; state-only changes get a
// line of their own.
func (r *Result) diff(w io.Writer, root string) {
	for _, c := range r.Changes {
		host := hostPath(root, c.Path)
		switch c.Action {
		case Create:
			unifiedDiff(w, "/dev/null", host, nil, c.New)
		case Update:
			unifiedDiff(w, host, host+" (rendered)", c.Old, c.New)
		case Remove:
			unifiedDiff(w, host, "/dev/null", c.Old, nil)
		case Adopt:
			fmt.Fprintf(w, "# %s already holds what zrs-recipe renders: it would record it as installed\n", host)
		case Forget:
			fmt.Fprintf(w, "# %s is gone already: it would drop it from %s\n", host, StateFile)
		}
		if c.Conflict != "" {
			fmt.Fprintf(w, "# %s: %s (--force)\n", host, c.Conflict)
		}
	}
}

// summary counts the changes by action: "2 created, 1 removed, 3 unchanged".
func (r *Result) summary() string {
	n := map[Action]int{}
	for _, c := range r.Changes {
		n[c.Action]++
	}
	var parts []string
	for a := Create; a < Keep; a++ {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[a], past(a)))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("%d unchanged", r.Kept)), ", ")
}

func past(a Action) string {
	return [...]string{"created", "updated", "removed", "adopted", "forgot", "kept"}[a]
}

func forced(c Change, o Options) string {
	if c.Conflict == "" || !o.Force {
		return ""
	}
	return " (forced: " + c.Conflict + ")"
}
