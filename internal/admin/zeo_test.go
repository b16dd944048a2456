package admin

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	n := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "zrs_zeo_") {
			n++
		}
	}
	if n != 10 {
		t.Errorf("%d zrs_zeo_* metrics exported for a server, want 10", n)
	}
}

// Each ZEO metric carries its own counter of the server's Stats.
func TestZEOMetricValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(zeoCollector{func() zeo.Stats {
		return zeo.Stats{Clients: 1, ActiveTxns: 2, Waiting: 3, Loads: 4, Stores: 5, Commits: 6, Aborts: 7,
			Conflicts: 8, ConflictsResolved: 9, InternalErrors: 10}
	}})
	want := map[string]float64{"zrs_zeo_clients": 1, "zrs_zeo_transactions_active": 2, "zrs_zeo_votes_waiting": 3,
		"zrs_zeo_loads_total": 4, "zrs_zeo_stores_total": 5, "zrs_zeo_commits_total": 6, "zrs_zeo_aborts_total": 7,
		"zrs_zeo_conflicts_total": 8, "zrs_zeo_conflicts_resolved_total": 9, "zrs_zeo_internal_errors_total": 10}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("ZEO metrics %v\nwant %v", got, want)
	}
}
