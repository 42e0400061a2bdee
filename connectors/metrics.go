package connectors

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the figures of the connectors this node runs.
type collector struct {
	m                                                         *Manager
	running, lagBytes, lagSeconds, events, txns, snapshotRows *prometheus.Desc
}

// Collector returns the Prometheus collector of m's connectors.
func (m *Manager) Collector() prometheus.Collector {
	l := []string{"connector"}
	return &collector{m: m,
		running:      prometheus.NewDesc("cairn_connector_streaming", "1 while the connector streams (0: starting, snapshot, restarting, failed).", l, nil),
		lagBytes:     prometheus.NewDesc("cairn_connector_slot_lag_bytes", "WAL the replication slot holds that the log does not: the server's LSN minus the confirmed one.", l, nil),
		lagSeconds:   prometheus.NewDesc("cairn_connector_lag_seconds", "Time since the last appended transaction committed in the database.", l, nil),
		events:       prometheus.NewDesc("cairn_connector_events_total", "Events appended since the connector started on this node.", l, nil),
		txns:         prometheus.NewDesc("cairn_connector_transactions_total", "Database transactions appended since the connector started on this node.", l, nil),
		snapshotRows: prometheus.NewDesc("cairn_connector_snapshot_rows_total", "Rows the initial snapshot appended since the connector started on this node.", l, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.lagBytes, c.lagSeconds, c.events, c.txns, c.snapshotRows} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	infos := make([]Info, 0, len(c.m.running))
	for _, d := range c.m.defs {
		if _, ok := c.m.running[d.Name]; ok {
			infos = append(infos, c.m.infoLocked(d))
		}
	}
	c.m.mu.Unlock()
	for _, info := range infos {
		name, m := info.Definition.Name, info.Metrics
		streaming := 0.0
		if info.State == "streaming" {
			streaming = 1
		}
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, streaming, name)
		ch <- prometheus.MustNewConstMetric(c.lagBytes, prometheus.GaugeValue, float64(m.SlotLagBytes), name)
		ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, float64(m.LagMs)/1000, name)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(m.Events), name)
		ch <- prometheus.MustNewConstMetric(c.txns, prometheus.CounterValue, float64(m.Transactions), name)
		ch <- prometheus.MustNewConstMetric(c.snapshotRows, prometheus.CounterValue, float64(m.SnapshotRows), name)
	}
}
