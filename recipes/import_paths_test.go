package recipes

import (
	"strings"
	"testing"
)

// ZConfig expands ~ (the runzeo user's home) in <filestorage> path and
// the <ssl> files: not relative to where runzeo ran, and unknown here.
// The import refuses it at its line rather than join it to <runner>'s
// directory (where zrs would then create a new, empty database).
func TestImportRefusesHomePaths(t *testing.T) {
	for name, conf := range map[string]string{
		"path": "<zeo>\n  address 127.0.0.1:8100\n</zeo>\n<filestorage 1>\n  path ~/var/Data.fs\n</filestorage>\n" +
			"<runner>\n  daemon true\n  directory /srv/plone/zeoserver\n</runner>\n",
		"ssl": "<zeo>\n  address 127.0.0.1:8100\n  <ssl>\n    certificate ~/ssl/server.pem\n    key /etc/ssl/server.key\n  </ssl>\n</zeo>\n" +
			"<filestorage 1>\n  path /srv/Data.fs\n</filestorage>\n",
	} {
		_, err := Import("zeo.conf", []byte(conf), "")
		if err == nil || !strings.Contains(err.Error(), "~ is the home directory of the user runzeo ran as") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A storage of the file replicating from another storage of the same file
// over a relative socket follows that socket where it moves, even when it
// is renamed because another socket of the file has the same base name.
func TestImportSameFileReplicateFromFollowsTheRenamedSocket(t *testing.T) {
	conf := `%import zc.zrs
<zeo>
  address var/zrs.sock
</zeo>
<zrs main>
  replicate-to main/zrs.sock
  <filestorage>
    path /srv/x/main.fs
  </filestorage>
</zrs>
<zrs catalog>
  replicate-from main/zrs.sock
  replicate-to catalog/zrs.sock
  <filestorage>
    path /srv/x/catalog.fs
  </filestorage>
</zrs>
`
	out, err := Import("zeo.conf", []byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSite("site.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var listen, from string
	for _, p := range s.Parts {
		switch p.Name {
		case "main-main":
			listen = p.ReplicationListen()
		case "main-catalog":
			from = p.Replication.From
		}
	}
	if listen == "" || from != listen {
		t.Errorf("main-catalog connects to %q, main-main listens on %q: they must meet\n%s", from, listen, out)
	}
}

// The <ssl> files given relative were relative to where runzeo ran, as
// the data path: resolved from zdaemon's <runner> directory with a NOTE,
// else left relative (refused by the recipe) with a NOTE saying so.
func TestImportResolvesRelativeTLSFiles(t *testing.T) {
	conf := `<zeo>
  address 127.0.0.1:8100
  <ssl>
    certificate var/ssl/server.pem
    authenticate var/ssl/clients.pem
  </ssl>
</zeo>
<filestorage 1>
  path var/filestorage/Data.fs
</filestorage>
<runner>
  daemon true
  directory /srv/plone/zeoserver
</runner>
`
	out, err := Import("zeo.conf", []byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSite("site.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tls := s.Parts[0].ZEO.TLS
	if tls == nil || tls.Certificate != "/srv/plone/zeoserver/var/ssl/server.pem" || tls.Key != tls.Certificate ||
		tls.Authenticate != "/srv/plone/zeoserver/var/ssl/clients.pem" {
		t.Errorf("tls %+v\n%s", tls, out)
	}
	if !strings.Contains(flatNotes(out), "<ssl> certificate var/ssl/server.pem is relative to where runzeo ran: zdaemon's <runner> directory /srv/plone/zeoserver") {
		t.Errorf("no NOTE on the resolved certificate:\n%s", out)
	}
	bare := strings.Replace(conf, "<runner>\n  daemon true\n  directory /srv/plone/zeoserver\n</runner>\n", "", 1)
	out, err = Import("zeo.conf", []byte(bare), "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flatNotes(out), "<ssl> certificate var/ssl/server.pem is relative to where runzeo ran, which this file does not say") {
		t.Errorf("no NOTE on the relative certificate:\n%s", out)
	}
	if _, err := ParseSite("site.yaml", out); err == nil || !strings.Contains(err.Error(), "zeo.tls.certificate") {
		t.Errorf("the recipe accepted a relative certificate: %v", err)
	}
}

// flatNotes is the imported site with its comments' line breaks and #
// marks taken out, so that a NOTE reads as one line.
func flatNotes(out []byte) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(string(out), "#", " ")), " ")
}
