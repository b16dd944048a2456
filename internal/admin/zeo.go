package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zrs-replication/zrs/core/zeo"
)

// ObserveZEO exports a ZEO server's counters as zrs_zeo_* metrics.
func (m *Metrics) ObserveZEO(s *zeo.Server) { m.reg.MustRegister(zeoCollector{s.Stats}) }

var (
	descZEOClients   = prometheus.NewDesc("zrs_zeo_clients", "ZEO clients connected.", nil, nil)
	descZEOActive    = prometheus.NewDesc("zrs_zeo_transactions_active", "ZEO transactions begun and not ended.", nil, nil)
	descZEOWaiting   = prometheus.NewDesc("zrs_zeo_votes_waiting", "ZEO votes waiting for the commit lock.", nil, nil)
	descZEOLoads     = prometheus.NewDesc("zrs_zeo_loads_total", "loadBefore and loadSerial calls served.", nil, nil)
	descZEOStores    = prometheus.NewDesc("zrs_zeo_stores_total", "storea calls received.", nil, nil)
	descZEOCommits   = prometheus.NewDesc("zrs_zeo_commits_total", "Transactions committed by ZEO clients.", nil, nil)
	descZEOAborts    = prometheus.NewDesc("zrs_zeo_aborts_total", "ZEO transactions aborted (tpc_abort, failed votes, disconnects).", nil, nil)
	descZEOConflicts = prometheus.NewDesc("zrs_zeo_conflicts_total", "Write conflicts handed back to clients for resolution.", nil, nil)
	descZEOResolved  = prometheus.NewDesc("zrs_zeo_conflicts_resolved_total", "Conflicting objects the clients resolved and committed.", nil, nil)
	descZEOInternal  = prometheus.NewDesc("zrs_zeo_internal_errors_total", "ZEO connections closed by an internal error (a bug in zrs; the log has its stack).", nil, nil)
)

// zeoCollector exports a ZEO server's Stats (tests give their own).
type zeoCollector struct{ stats func() zeo.Stats }

func (c zeoCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descZEOClients, descZEOActive, descZEOWaiting, descZEOLoads, descZEOStores, descZEOCommits, descZEOAborts, descZEOConflicts, descZEOResolved, descZEOInternal} {
		ch <- d
	}
}

func (c zeoCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	put := func(d *prometheus.Desc, t prometheus.ValueType, v int64) {
		ch <- prometheus.MustNewConstMetric(d, t, float64(v))
	}
	put(descZEOClients, prometheus.GaugeValue, int64(st.Clients))
	put(descZEOActive, prometheus.GaugeValue, st.ActiveTxns)
	put(descZEOWaiting, prometheus.GaugeValue, st.Waiting)
	put(descZEOLoads, prometheus.CounterValue, st.Loads)
	put(descZEOStores, prometheus.CounterValue, st.Stores)
	put(descZEOCommits, prometheus.CounterValue, st.Commits)
	put(descZEOAborts, prometheus.CounterValue, st.Aborts)
	put(descZEOConflicts, prometheus.CounterValue, st.Conflicts)
	put(descZEOResolved, prometheus.CounterValue, st.ConflictsResolved)
	put(descZEOInternal, prometheus.CounterValue, st.InternalErrors)
}
