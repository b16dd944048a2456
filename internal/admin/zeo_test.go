package admin

import (
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zeo"
)

func TestZEOMetrics(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := zeo.NewServer(st, zeo.Options{})
	defer srv.Close()
	m := NewMetrics()
	m.ObserveZEO(srv)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"zrs_zeo_clients": false, "zrs_zeo_commits_total": false, "zrs_zeo_conflicts_total": false, "zrs_zeo_loads_total": false, "zrs_zeo_internal_errors_total": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s not exported", name)
		}
	}
}
