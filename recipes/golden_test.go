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
	root, s, _ = renderSampleReport(t, name)
	return root, s
}

// renderSampleReport is renderSample, also returning the report with the
// root written as ROOT.
func renderSampleReport(t *testing.T, name string) (root string, s *Site, report []byte) {
	t.Helper()
	s, err := LoadSite(filepath.Join("testdata", "sites", name, "site.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	o := Options{Root: root}
	res, err := Apply(s, o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Report(&b, o)
	return root, s, bytes.ReplaceAll(b.Bytes(), []byte(root), []byte("ROOT"))
}

// TestGoldenSites renders each sample site into a fresh root and compares
// every file written, the state file included, with
// testdata/sites/NAME/golden/, and what it printed with report.txt
// (regenerate with go test ./recipes -update).
func TestGoldenSites(t *testing.T) {
	for _, name := range sampleSites {
		t.Run(name, func(t *testing.T) {
			root, _, report := renderSampleReport(t, name)
			golden := filepath.Join("testdata", "sites", name, "golden")
			reportFile := filepath.Join("testdata", "sites", name, "report.txt")
			if *update {
				if err := os.RemoveAll(golden); err != nil {
					t.Fatal(err)
				}
				copyTree(t, root, golden)
				if err := os.WriteFile(reportFile, report, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			compareTrees(t, root, golden)
			if want, err := os.ReadFile(reportFile); err != nil || !bytes.Equal(report, want) {
				var d bytes.Buffer
				unifiedDiff(&d, reportFile, "report", want, report)
				t.Errorf("the report differs from %s (%v):\n%s", reportFile, err, d.String())
			}
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
