package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/internal/config"
)

// The site.yaml.example the packages ship parses, validates and renders,
// and says what the appliance documents.
func TestShippedExample(t *testing.T) {
	file := filepath.Join("..", "site.yaml.example")
	s, err := LoadSite(file)
	if err != nil {
		t.Fatal(err)
	}
	main, replica := s.Part("main"), s.Part("replica")
	if main == nil || replica == nil || len(s.Parts) != 2 {
		t.Fatalf("parts: %v", s.Parts)
	}
	if main.Role != config.Primary || main.ZEOAddress() != "127.0.0.1:8100" || main.ReplicationListen() != "0.0.0.0:8101" ||
		main.Path != "/var/lib/zrs/main/Data.fs" || main.Durability == nil || main.Durability.Level != "async" {
		t.Errorf("main: %+v", main)
	}
	if replica.Role != config.Secondary || replica.ReplicationFrom() != "db1.example.com:8101" || replica.Durability != nil || replica.User != "zrs" {
		t.Errorf("replica: %+v", replica)
	}
	files, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Errorf("rendered %d files, want 2 configs and 3 sockets", len(files))
	}
	text, _ := os.ReadFile(file)
	for _, key := range []string{"blob_dir", "tls:", "authenticate", "user:", "keep_alive", "protocol", "on_sync_timeout", "msgpack",
		"read_timeout", "idle_timeout", "compression", "transaction_timeout", "max_transaction_mb"} {
		if !strings.Contains(string(text), key) {
			t.Errorf("the example does not mention %s", key)
		}
	}
}

// Every NAME.yaml the recipe renders, for the sample sites and the
// shipped example, is a config "zrs run" accepts (internal/config.Parse)
// and says what the part says.
func TestRenderedConfigsParse(t *testing.T) {
	sites := []string{filepath.Join("..", "site.yaml.example")}
	for _, n := range sampleSites {
		sites = append(sites, filepath.Join("testdata", "sites", n, "site.yaml"))
	}
	for _, file := range sites {
		s, err := LoadSite(file)
		if err != nil {
			t.Fatal(err)
		}
		files, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range files {
			if filepath.Dir(f.Path) != ConfigDir {
				continue
			}
			n++
			c, err := config.Parse(f.Path, f.Data)
			if err != nil {
				t.Errorf("%s: %s does not parse: %v", file, f.Path, err)
				continue
			}
			want := s.Part(f.Part).DaemonConfig()
			if got, _ := config.Render(c); string(got) != string(mustRender(t, want)) {
				t.Errorf("%s: %s reads back as another config:\n%s", file, f.Path, got)
			}
		}
		if n != len(s.Parts) {
			t.Errorf("%s: %d configs for %d parts", file, n, len(s.Parts))
		}
	}
}

func mustRender(t *testing.T, c *config.Config) []byte {
	t.Helper()
	b, err := config.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
