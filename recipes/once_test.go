package recipes

import (
	"strings"
	"testing"
)

// The daemon config refuses relative paths and
// port 0 too, and the site validator reports the daemon config's errors
// as well as its own: every such mistake is reported twice, in two
// wordings, at the same line.
func TestEachMistakeReportedOnce(t *testing.T) {
	site := `parts:
  main:
    role: primary
    path: data/Data.fs
    zeo:
      address: 127.0.0.1:0
      tls: {certificate: server.pem, key: server.key}
    admin: run/main.admin
  rep:
    role: secondary
    replication: {from: ./p.sock, listen: "0"}
`
	_, err := ParseSite("site.yaml", []byte(site))
	if err == nil {
		t.Fatal("accepted")
	}
	seen := map[string]int{}
	for _, line := range strings.Split(err.Error(), "\n") {
		// "site.yaml:4: parts.main.path: ..." -> "site.yaml:4: parts.main.path"
		if i := strings.Index(line, ": "); i > 0 {
			if j := strings.Index(line[i+2:], ": "); j > 0 {
				seen[line[:i+2+j]]++
			}
		}
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s: reported %d times", k, n)
		}
	}
	if t.Failed() {
		t.Logf("the errors:\n%v", err)
	}
}
