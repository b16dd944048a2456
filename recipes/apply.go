package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Action is what a run does to one file.
type Action int

// Actions, in the order a report lists them.
const (
	Create Action = iota // write a file that is not there
	Update               // rewrite a file the recipe wrote earlier
	Remove               // delete a file the recipe wrote for what the site no longer has
	Adopt                // record a file that already holds exactly what the recipe renders
	Forget               // drop a state entry whose file someone already deleted
	Keep                 // nothing to do
)

func (a Action) String() string {
	return [...]string{"create", "update", "remove", "adopt", "forget", "keep"}[a]
}

// Change is the plan for one file.
type Change struct {
	Action Action
	Path   string // absolute path on the host
	Part   string
	Old    []byte // on disk now (nil if absent)
	New    []byte // to write (nil for Remove and Forget)
	// Conflict says why the change needs --force: the file on disk was not
	// written by the recipe, or was edited by hand since.
	Conflict string
}

// writes reports whether the change touches the file system (beyond the
// state file).
func (c Change) writes() bool { return c.Action == Create || c.Action == Update || c.Action == Remove }

// Options control a run.
type Options struct {
	Root   string // render under this directory; "" means /
	DryRun bool   // print a unified diff of what would change; write nothing
	Force  bool   // overwrite or remove files edited by hand or not written by the recipe
	// Systemctl, when not nil, is the command (such as {"systemctl"}) the
	// run uses to disable removed units before removing their files, then
	// daemon-reload, enable and restart what changed. Nil: print the
	// commands instead.
	Systemctl []string
	Out       io.Writer // the report; nil discards it
}

// Result is what a run did (or, with DryRun, would do).
type Result struct {
	Changes  []Change   // every change but Keep, in path order
	Kept     int        // files already up to date
	Before   [][]string // systemctl commands for before the files change (disable removed units)
	After    [][]string // systemctl commands for after (daemon-reload, enable, restart)
	Enabled  []string   // units of removed parts that are still enabled
	Notes    []string   // what the operator must prepare (users, directories)
	NoChange bool       // nothing to write, the state file included
}

// ConflictError is a run refused because files on disk are not what the
// recipe last wrote there (or units to remove are still enabled).
type ConflictError struct{ Problems []string }

func (e *ConflictError) Error() string {
	return "zrs-recipe changed nothing:\n  " + strings.Join(e.Problems, "\n  ")
}

// Apply renders the site and brings the root up to date: it writes what
// is new or changed, removes what it installed for parts (or listeners)
// the site no longer has, records it all in the state file, and reports.
//
// It refuses, changing nothing, when a file to overwrite or remove was
// edited by hand or was not written by it (unless Force), or when the
// units of something to remove are still enabled and Systemctl is nil.
// Files are replaced atomically (temporary file, fsync, rename, fsync of
// the directory); the state file is written last, so a run interrupted
// midway is finished by the next one.
func Apply(s *Site, o Options) (*Result, error) {
	root := o.Root
	if root == "" {
		root = "/"
	}
	if st, err := os.Stat(root); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", root)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	files, err := Render(s)
	if err != nil {
		return nil, err
	}
	state, err := loadState(root)
	if err != nil {
		return nil, err
	}
	res, err := plan(root, files, state)
	if err != nil {
		return nil, err
	}
	res.Before, res.After = commands(res.Changes, s)
	if o.Systemctl == nil && len(res.Before) > 0 {
		// Printed, not run: the operator stops what goes (Apply refuses
		// below while it is still enabled).
		stop := append([]string{"systemctl", "stop"}, res.Before[0][3:]...)
		res.Before, res.After = nil, append([][]string{stop}, res.After...)
	}
	res.Enabled = enabledUnits(root, res.Changes)
	res.Notes = preparations(s, res.Changes)
	var problems []string
	for _, c := range res.Changes {
		if c.Conflict != "" && !o.Force {
			problems = append(problems, c.Path+": "+c.Conflict+"; pass --force to "+c.Action.String()+" it anyway")
		}
	}
	if len(res.Enabled) > 0 && o.Systemctl == nil && !o.Force {
		problems = append(problems, fmt.Sprintf("units to remove are still enabled (%s): run \"systemctl disable --now %s\" first, or pass --systemctl",
			strings.Join(res.Enabled, ", "), strings.Join(unitsToRemove(res.Changes), " ")))
	}
	if len(problems) > 0 {
		return res, &ConflictError{Problems: problems}
	}
	res.NoChange = len(res.Changes) == 0
	if o.DryRun || res.NoChange {
		return res, nil
	}
	if o.Systemctl != nil {
		if err := run(o.Systemctl, res.Before, o.Out); err != nil {
			return res, err
		}
	}
	if err := write(root, res.Changes, state); err != nil {
		return res, err
	}
	if o.Systemctl != nil {
		if err := run(o.Systemctl, res.After, o.Out); err != nil {
			return res, err
		}
	}
	return res, nil
}

// plan compares the rendered files and the state with the disk.
func plan(root string, files []File, state *State) (*Result, error) {
	res := &Result{}
	want := map[string]bool{}
	for _, f := range files {
		want[f.Path] = true
		old, err := readIfExists(hostPath(root, f.Path))
		if err != nil {
			return nil, err
		}
		c := Change{Path: f.Path, Part: f.Part, Old: old, New: f.Data}
		inst, installed := state.lookup(f.Path)
		switch {
		case old == nil:
			c.Action = Create
		case bytes.Equal(old, f.Data):
			c.Action = Keep
			if !installed || inst.SHA256 != hash(f.Data) || inst.Part != f.Part {
				c.Action = Adopt
			}
		default:
			c.Action = Update
			if !installed {
				c.Conflict = "exists but was not written by zrs-recipe"
			} else if hash(old) != inst.SHA256 {
				c.Conflict = "edited by hand since zrs-recipe wrote it"
			}
		}
		res.add(c)
	}
	for _, inst := range state.Files {
		if want[inst.Path] {
			continue
		}
		old, err := readIfExists(hostPath(root, inst.Path))
		if err != nil {
			return nil, err
		}
		c := Change{Action: Remove, Path: inst.Path, Part: inst.Part, Old: old}
		switch {
		case old == nil:
			c.Action = Forget
		case hash(old) != inst.SHA256:
			c.Conflict = "edited by hand since zrs-recipe wrote it"
		}
		res.add(c)
	}
	sortChanges(res.Changes)
	return res, nil
}

func (r *Result) add(c Change) {
	if c.Action == Keep {
		r.Kept++
		return
	}
	r.Changes = append(r.Changes, c)
}

// readIfExists returns the content of file, or nil if there is none.
func readIfExists(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// write carries out the changes and saves the new state.
func write(root string, changes []Change, state *State) error {
	installed := map[string]InstalledFile{}
	for _, f := range state.Files {
		installed[f.Path] = f
	}
	for _, c := range changes {
		file := hostPath(root, c.Path)
		switch c.Action {
		case Create, Update:
			if err := writeFileAtomic(file, c.New, 0o644); err != nil {
				return err
			}
			installed[c.Path] = InstalledFile{Path: c.Path, Part: c.Part, SHA256: hash(c.New)}
		case Adopt:
			installed[c.Path] = InstalledFile{Path: c.Path, Part: c.Part, SHA256: hash(c.New)}
		case Remove:
			if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removeEmptyDropinDir(filepath.Dir(file))
			delete(installed, c.Path)
		case Forget:
			delete(installed, c.Path)
		}
	}
	next := &State{Version: stateVersion}
	for _, f := range installed {
		next.Files = append(next.Files, f)
	}
	return writeFileAtomic(hostPath(root, StateFile), next.encode(), 0o644)
}

// removeEmptyDropinDir removes a unit's drop-in directory (NAME.d) once
// its last file is gone; any other directory stays.
func removeEmptyDropinDir(dir string) {
	if strings.HasSuffix(dir, ".d") {
		_ = os.Remove(dir) // fails, harmlessly, when not empty
	}
}

// writeFileAtomic replaces file with data: a temporary file in the same
// directory, fsynced, renamed over file, then the directory fsynced, so
// a crash leaves the old content or the new, never a mix.
func writeFileAtomic(file string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// run runs each systemctl command in turn, echoing it to out.
func run(systemctl []string, cmds [][]string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	for _, c := range cmds {
		argv := append(append([]string{}, systemctl...), c[1:]...)
		fmt.Fprintf(out, "running: %s\n", strings.Join(argv, " "))
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}

// enabledUnits lists the units of files to remove (and the service of a
// removed part) that have an enablement symlink under root: removing their
// files first would leave them dangling in a .wants directory.
func enabledUnits(root string, changes []Change) []string {
	var units []string
	for _, u := range unitsToRemove(changes) {
		m, _ := filepath.Glob(filepath.Join(hostPath(root, UnitDir), "*.wants", u))
		if len(m) > 0 {
			units = append(units, u)
		}
	}
	return units
}

// sortChanges orders changes by path.
func sortChanges(cs []Change) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].Path < cs[j-1].Path; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// partOf is the part a removed config file belonged to, if c removes one.
func partOf(c Change) (string, bool) {
	if c.Action != Remove && c.Action != Forget {
		return "", false
	}
	if path.Dir(c.Path) == ConfigDir && strings.HasSuffix(c.Path, ".yaml") {
		return c.Part, true
	}
	return "", false
}

// preparations says what a new or changed drop-in needs that the recipe
// does not create: the user, and the directories outside /var/lib/zrs.
func preparations(s *Site, changes []Change) []string {
	var notes []string
	for _, c := range changes {
		p := s.Part(c.Part)
		if p == nil || c.Path != dropinPath(p.Name) || (c.Action != Create && c.Action != Update) {
			continue
		}
		d, _ := dropin(p)
		if d.User != "" {
			notes = append(notes, fmt.Sprintf("part %s runs as %s: that user must exist (the package creates only zrs)", p.Name, d.User))
			if strings.HasPrefix(p.Path, DefaultDataDir+"/") {
				// systemd hands only DATA_DIR/NAME to the part's user.
				notes = append(notes, fmt.Sprintf("part %s runs as %s with its data under %s, which is 0750 %s:%s: "+
					"add %s to group %s (usermod -aG %s %s) or set data_dir or path elsewhere, or it cannot open its file",
					p.Name, d.User, DefaultDataDir, DefaultUser, DefaultUser, d.User, DefaultUser, DefaultUser, d.User))
			}
		}
		for _, dir := range d.ReadWritePaths {
			notes = append(notes, fmt.Sprintf("part %s writes in %s: create it before starting it (install -d -o %s -g %s -m 0750 %s)", p.Name, dir, p.User, p.User, dir))
		}
	}
	return notes
}
