package admin

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Metric namespace: every zrs metric is named zrs_*.
const namespace = "zrs"

// latencyBuckets span a fast fsync (50 µs) to a stuck disk (10 s).
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 10, 20)

// Metrics is a daemon's Prometheus registry: counters and histograms fed
// by the hooks of core/primary and core/secondary, and gauges read from
// the node's Status at each scrape.
type Metrics struct {
	reg *prometheus.Registry

	nodeMu sync.Mutex
	node   Node // guarded by nodeMu

	// Bytes exchanged with secondaries (down) and the primary (up).
	downRead, downWritten, upRead, upWritten atomic.Int64
	replInternal                             atomic.Int64 // replication streams ended by an internal error
	upInternal                               atomic.Int64 // connections to the primary ended by an internal error
	replRefused                              atomic.Int64 // secondaries refused at the handshake

	connects  prometheus.Counter
	commits   *prometheus.CounterVec
	commitDur prometheus.Histogram
	applyDur  prometheus.Histogram
}

// NewMetrics returns the metrics of one daemon, with the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.connects = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
		Name: "upstream_connects_total", Help: "Connections made to the primary (reconnects are this minus one)."})
	m.commits = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "commits_total", Help: "Transactions committed through the primary layer, by result: ok, or error (a failed finish, or a vote that failed in the storage, such as on a full disk; not a conflict)."},
		[]string{"result"})
	m.commitDur = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
		Name: "commit_duration_seconds", Help: "Time of a commit's finish: local write and fsync, plus the wait for acknowledgements in sync mode.",
		Buckets: latencyBuckets})
	m.applyDur = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
		Name: "apply_duration_seconds", Help: "Time a secondary took to apply one replicated transaction (begin, restores, vote, finish with fsync).",
		Buckets: latencyBuckets})
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connects, m.commits, m.commitDur, m.applyDur,
		counter("replication_sent_bytes_total", "Bytes sent to secondaries.", &m.downWritten),
		counter("replication_received_bytes_total", "Bytes received from the primary.", &m.upRead),
		counter("replication_secondary_received_bytes_total", "Bytes received from secondaries (handshakes, keep-alives, acknowledgements).", &m.downRead),
		counter("replication_primary_sent_bytes_total", "Bytes sent to the primary (handshakes, keep-alives, acknowledgements).", &m.upWritten),
		counter("replication_internal_errors_total", "Streams to secondaries ended by an internal error (a bug in zrs; the log has its stack).", &m.replInternal),
		counter("upstream_internal_errors_total", "Connections to the primary ended by an internal error (a bug in zrs; the secondary reconnects; the log has its stack).", &m.upInternal),
		counter("replication_refusals_total", "Secondaries refused at the handshake: another database, a diverged history, a protocol error (the log says which).", &m.replRefused),
		statusCollector{m},
	)
	m.commits.WithLabelValues("ok")
	m.commits.WithLabelValues("error")
	return m
}

// Registry returns the registry (GET /metrics serves it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetNode sets the node whose Status the gauges report.
func (m *Metrics) SetNode(n Node) {
	m.nodeMu.Lock()
	m.node = n
	m.nodeMu.Unlock()
}

func (m *Metrics) status() (Status, bool) {
	m.nodeMu.Lock()
	n := m.node
	m.nodeMu.Unlock()
	if n == nil {
		return Status{}, false
	}
	return n.Status(), true
}

// ObservePrimary feeds the commit counters, the latency histogram, the
// count of streams ended by an internal error and that of refused
// secondaries from p.
func (m *Metrics) ObservePrimary(p *primary.Primary) {
	p.ObserveInternalErrors(func() { m.replInternal.Add(1) })
	p.ObserveRefusals(func() { m.replRefused.Add(1) })
	p.ObserveCommits(m.observeCommit)
}

// observeCommit counts one commit made through this node.
func (m *Metrics) observeCommit(_ zodb.Tid, took time.Duration, err error) {
	if err != nil {
		m.commits.WithLabelValues("error").Inc()
		return
	}
	m.commits.WithLabelValues("ok").Inc()
	m.commitDur.Observe(took.Seconds())
}

// ObserveSecondary feeds the apply latency histogram and the count of
// connections to the primary ended by an internal error from s. With
// ownCommits, the commits made through s once promoted are counted too
// (zrs_commits_total, zrs_commit_duration_seconds): set it unless s wraps
// a primary that ObservePrimary already counts (a relay).
func (m *Metrics) ObserveSecondary(s *secondary.Secondary, ownCommits bool) {
	s.ObserveApplies(func(_ zodb.Tid, took time.Duration) { m.applyDur.Observe(took.Seconds()) })
	s.ObserveInternalErrors(func() { m.upInternal.Add(1) })
	if ownCommits {
		s.ObserveOwnCommits(m.observeCommit)
	}
}

// statusCollector turns the node's Status into gauges at scrape time.
type statusCollector struct{ m *Metrics }

var (
	descRole    = prometheus.NewDesc("zrs_role", "1 for the node's current role (primary or secondary).", []string{"role"}, nil)
	descLastTid = prometheus.NewDesc("zrs_last_tid",
		"The last committed tid as a number (a float: exact to 2^53, good for change detection; the hex tid is in /status).", nil, nil)
	descLastTime  = prometheus.NewDesc("zrs_last_transaction_timestamp_seconds", "Unix time encoded in the last committed tid (0 if empty).", nil, nil)
	descConnected = prometheus.NewDesc("zrs_secondaries_connected", "Secondaries connected to this node (a primary or a relay).", nil, nil)
	descLagSec    = prometheus.NewDesc("zrs_secondary_lag_seconds", "Time between a secondary's position and this node's last tid.", []string{"peer"}, nil)
	descLagTxn    = prometheus.NewDesc("zrs_secondary_lag_transactions", "Transactions a secondary is behind (when known).", []string{"peer"}, nil)
	descLagBytes  = prometheus.NewDesc("zrs_secondary_lag_bytes", "Bytes of this node's file a secondary is behind (when known).", []string{"peer"}, nil)
	descUpConn    = prometheus.NewDesc("zrs_upstream_connected", "1 if this secondary is connected to its primary.", nil, nil)
	descCaughtUp  = prometheus.NewDesc("zrs_upstream_caught_up", "1 if this secondary is connected and has applied all its primary sent.", nil, nil)
	descDegraded  = prometheus.NewDesc("zrs_sync_degraded",
		"1 while a sync primary replicates asynchronously after a sync timeout (on_sync_timeout: degrade); 0 otherwise. Only for sync primaries.", nil, nil)
	descFsyncRunning = prometheus.NewDesc("zrs_storage_fsync_running_seconds",
		"How long the storage's commit fsync under way has been running (0: none is). Commits wait for it; seconds mean a disk that does not answer.", nil, nil)
)

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRole, descLastTid, descLastTime, descConnected, descLagSec, descLagTxn, descLagBytes, descUpConn, descCaughtUp, descDegraded, descFsyncRunning} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.m.status()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, r := range []string{RolePrimary, RoleSecondary} {
		gauge(descRole, b2f(st.Role == r), r)
	}
	var tid zodb.Tid
	if t, err := zodb.ParseTid(st.LastTid); err == nil {
		tid = t
	}
	gauge(descLastTid, float64(tid))
	var ts float64
	if !st.LastTidTime.IsZero() {
		ts = float64(st.LastTidTime.UnixNano()) / 1e9
	}
	gauge(descLastTime, ts)
	gauge(descFsyncRunning, st.FsyncRunning)
	if st.Serving {
		gauge(descConnected, float64(len(st.Secondaries)))
		for _, d := range st.Secondaries {
			gauge(descLagSec, d.LagSeconds, d.Peer)
			if d.LagTransactions != nil {
				gauge(descLagTxn, float64(*d.LagTransactions), d.Peer)
			}
			if d.LagBytes != nil {
				gauge(descLagBytes, float64(*d.LagBytes), d.Peer)
			}
		}
	}
	if up := st.Upstream; up != nil {
		gauge(descUpConn, b2f(up.Connected))
		gauge(descCaughtUp, b2f(up.CaughtUp))
	}
	if strings.HasPrefix(st.Durability, "sync") {
		gauge(descDegraded, b2f(st.SyncDegraded))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
