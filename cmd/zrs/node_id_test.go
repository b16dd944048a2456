package main

import (
	"path/filepath"
	"testing"
)

// A secondary's node name (for the sync quorum) is the same across
// restarts of the same file, whether given relative or absolute, and
// differs for another file on the same host.
func TestNodeIDStableAndDistinct(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a", "Data.fs")
	t.Chdir(dir)
	first, again, relative := nodeID(a), nodeID(a), nodeID(filepath.Join("a", "Data.fs"))
	if first != again || first != relative {
		t.Errorf("node id of %s not stable: %s, %s, %s", a, first, again, relative)
	}
	if nodeID(a) == nodeID(filepath.Join(dir, "b", "Data.fs")) {
		t.Error("two files, one node id")
	}
	if len(nodeID(a)) != 32 {
		t.Errorf("node id %q", nodeID(a))
	}
}
