package recipes

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from what the code produces")

// sampleSites are the sites under testdata/sites/: one primary; a primary
// and two secondaries; a relay chain.
var sampleSites = []string{"single", "pair", "relay"}

// renderSample applies testdata/sites/NAME/site.yaml to a fresh root.
func renderSample(t *testing.T, name string) (root string, s *Site) {
	t.Helper()
	s, err := LoadSite(filepath.Join("testdata", "sites", name, "site.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	if _, err := Apply(s, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	return root, s
}

// TestGoldenSites renders each sample site into a fresh root and compares
// every file written, the state file included, with
// testdata/sites/NAME/golden/ (regenerate with go test ./recipes -update).
func TestGoldenSites(t *testing.T) {
	for _, name := range sampleSites {
		t.Run(name, func(t *testing.T) {
			root, _ := renderSample(t, name)
			golden := filepath.Join("testdata", "sites", name, "golden")
			if *update {
				if err := os.RemoveAll(golden); err != nil {
					t.Fatal(err)
				}
				copyTree(t, root, golden)
			}
			compareTrees(t, root, golden)
		})
	}
}

// tree maps each regular file under dir (relative path) to its content.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compareTrees(t *testing.T, got, want string) {
	t.Helper()
	g, w := tree(t, got), tree(t, want)
	for _, p := range sortedKeys(w) {
		if b, ok := g[p]; !ok {
			t.Errorf("%s: not rendered", p)
		} else if !bytes.Equal(b, w[p]) {
			var d bytes.Buffer
			unifiedDiff(&d, "golden/"+p, "rendered/"+p, w[p], b)
			t.Errorf("%s differs from the golden file (go test ./recipes -update if intended):\n%s", p, d.String())
		}
	}
	for _, p := range sortedKeys(g) {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: rendered but has no golden file", p)
		}
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	for p, b := range tree(t, from) {
		dst := filepath.Join(to, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
