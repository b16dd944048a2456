package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
)

// State is what zrs-recipe installed: the state file
// /var/lib/zrs-recipe/installed.json under the root. It lets a later run
// tell its own files (safe to update or remove) from files it did not
// write, and a file it wrote from one edited by hand since.
type State struct {
	Version int             `json:"version"` // stateVersion
	Files   []InstalledFile `json:"files"`   // sorted by path
}

// InstalledFile is one file the recipe wrote.
type InstalledFile struct {
	Path   string `json:"path"`   // absolute path on the host
	Part   string `json:"part"`   // the part it was rendered for
	SHA256 string `json:"sha256"` // hex SHA-256 of the content written
}

const stateVersion = 1

// hash is the hex SHA-256 of b.
func hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// loadState reads the state file under root; a missing one is an empty
// state (nothing installed yet).
func loadState(root string) (*State, error) {
	file := hostPath(root, StateFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v): move it away and run again with --force to take over the files it listed", file, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this zrs-recipe reads version %d", file, s.Version, stateVersion)
	}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.SHA256 == "" {
			return nil, fmt.Errorf("state file %s is damaged: bad entry %+v", file, f)
		}
	}
	return &s, nil
}

// lookup returns the entry for host path p.
func (s *State) lookup(p string) (InstalledFile, bool) {
	for _, f := range s.Files {
		if f.Path == p {
			return f, true
		}
	}
	return InstalledFile{}, false
}

// encode is the state file's content: indented JSON, files sorted.
func (s *State) encode() []byte {
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	if s.Files == nil {
		s.Files = []InstalledFile{}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // plain strings and ints always marshal
	}
	return append(b, '\n')
}

// hostPath is host path p under root.
func hostPath(root, p string) string {
	return path.Join(root, p)
}
