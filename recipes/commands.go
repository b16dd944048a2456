package recipes

import (
	"path"
	"sort"
	"strings"

	"github.com/zrs-replication/zrs/internal/config"
)

// partChanges sorts one part's file changes by what they mean for its units.
type partChanges struct {
	name                            string
	removed, isNew, config          bool     // the part left the site; it is new; its config or drop-in changed
	logLevelOnly                    bool     // of the config and drop-in, only the config's log_level changed
	newSockets, changed, oldSockets []string // socket units created, updated, removed
}

// byPart groups the changes that write files by part. An adopted file
// counts as created: it holds what the recipe renders but no run has
// recorded it, as after a run interrupted before its state file (and its
// systemctl commands); enabling and starting are idempotent.
func byPart(changes []Change, s *Site) []*partChanges {
	m := map[string]*partChanges{}
	var out []*partChanges
	for _, c := range changes {
		if !c.writes() && c.Action != Adopt {
			continue
		}
		pc := m[c.Part]
		if pc == nil {
			pc = &partChanges{name: c.Part, removed: s.Part(c.Part) == nil}
			m[c.Part] = pc
			out = append(out, pc)
		}
		unit, isSocket := socketUnit(c.Path)
		switch {
		case isSocket && (c.Action == Create || c.Action == Adopt):
			pc.newSockets = append(pc.newSockets, unit)
		case isSocket && c.Action == Update:
			pc.changed = append(pc.changed, unit)
		case isSocket && c.Action == Remove:
			pc.oldSockets = append(pc.oldSockets, unit)
		case c.Path == ConfigPath(c.Part) && (c.Action == Create || c.Action == Adopt):
			pc.isNew = true
		case !pc.config && c.Path == ConfigPath(c.Part) && c.Action == Update && onlyLogLevel(c):
			pc.config, pc.logLevelOnly = true, true
		default:
			pc.config, pc.logLevelOnly = true, false
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// socketUnit is the unit name of a socket unit file path.
func socketUnit(p string) (string, bool) {
	if path.Dir(p) != UnitDir || !strings.HasSuffix(p, ".socket") {
		return "", false
	}
	return path.Base(p), true
}

// unitsToRemove are the units whose files go (sockets), and the service
// of each part that leaves the site: they must be disabled and stopped.
func unitsToRemove(changes []Change) []string {
	var units []string
	services := map[string]bool{}
	for _, c := range changes {
		if c.Action != Remove && c.Action != Forget {
			continue
		}
		if u, ok := socketUnit(c.Path); ok && c.Action == Remove {
			units = append(units, u)
		}
		if name, ok := partOf(c); ok && !services[name] {
			services[name] = true
			units = append(units, ServiceUnit(name))
		}
	}
	return units
}

// commands are the systemctl commands a run needs: before (with
// --systemctl only) disables and stops the units whose files go; after
// reloads systemd and starts, restarts or enables what changed. When the
// recipe only prints them, after begins by stopping the removed units
// (disabling them first is the operator's job; Apply refuses while they
// are enabled).
func commands(changes []Change, s *Site) (before, after [][]string) {
	gone := unitsToRemove(changes)
	if len(gone) > 0 {
		before = append(before, append([]string{"systemctl", "disable", "--now"}, gone...))
	}
	reload := false
	for _, c := range changes {
		if (c.writes() || c.Action == Adopt) && strings.HasPrefix(c.Path, UnitDir+"/") {
			reload = true
		}
	}
	if reload {
		after = append(after, []string{"systemctl", "daemon-reload"})
	}
	for _, pc := range byPart(changes, s) {
		after = append(after, pc.commands()...)
	}
	return before, after
}

// commands for one part that stays or is new.
func (pc *partChanges) commands() [][]string {
	svc := ServiceUnit(pc.name)
	cmd := func(verb string, units ...string) []string {
		return append(strings.Fields("systemctl "+verb), units...)
	}
	switch {
	case pc.removed:
		return nil
	case pc.isNew:
		return [][]string{cmd("enable --now", append(pc.newSockets, svc)...)}
	case len(pc.newSockets)+len(pc.changed)+len(pc.oldSockets) > 0:
		// A socket's address changed: the service lets go of the old
		// listener before the socket unit binds the new one.
		out := [][]string{cmd("stop", svc)}
		if len(pc.newSockets) > 0 {
			out = append(out, cmd("enable --now", pc.newSockets...))
		}
		if len(pc.changed) > 0 {
			out = append(out, cmd("restart", pc.changed...))
		}
		return append(out, cmd("start", svc))
	case pc.logLevelOnly:
		// zrs run applies log_level on SIGHUP: no need to drop clients.
		return [][]string{cmd("try-reload-or-restart", svc)}
	case pc.config:
		return [][]string{cmd("try-restart", svc)}
	}
	return nil
}

// onlyLogLevel reports whether a config file's update changes log_level
// and nothing else.
func onlyLogLevel(c Change) bool {
	old, err1 := config.Parse(c.Path, c.Old)
	nw, err2 := config.Parse(c.Path, c.New)
	if err1 != nil || err2 != nil {
		return false
	}
	d := config.Diff(old, nw)
	return len(d) == 1 && d[0] == "log_level"
}
