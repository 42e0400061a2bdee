package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/txn"
)

// clusterCollector reports per-partition gauges at scrape time, so nothing
// is kept per partition between scrapes.
type clusterCollector struct {
	c       *cluster.Cluster
	topics  *prometheus.Desc
	hwm     *prometheus.Desc
	lso     *prometheus.Desc
	start   *prometheus.Desc
	size    *prometheus.Desc
	offline *prometheus.Desc
	node    nodeDescs
}

func newClusterCollector(c *cluster.Cluster) *clusterCollector {
	labels := []string{"topic", "partition"}
	return &clusterCollector{c: c,
		topics:  prometheus.NewDesc("cairn_topics", "Topics on this node.", nil, nil),
		hwm:     prometheus.NewDesc("cairn_partition_high_watermark", "Durable log end offset.", labels, nil),
		lso:     prometheus.NewDesc("cairn_partition_last_stable_offset", "Offset read_committed consumers read up to: the oldest open transaction's first offset, else the high watermark.", labels, nil),
		start:   prometheus.NewDesc("cairn_partition_log_start_offset", "First offset still in the log.", labels, nil),
		size:    prometheus.NewDesc("cairn_partition_size_bytes", "Bytes of segments on disk.", labels, nil),
		offline: prometheus.NewDesc("cairn_partitions_offline", "Partitions offline after a storage failure.", nil, nil),
		node:    newNodeDescs(),
	}
}

func (cc *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.topics
	ch <- cc.hwm
	ch <- cc.lso
	ch <- cc.start
	ch <- cc.size
	ch <- cc.offline
	cc.node.describe(ch)
}

func (cc *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	topics := cc.c.Topics()
	ch <- prometheus.MustNewConstMetric(cc.topics, prometheus.GaugeValue, float64(len(topics)))
	offline := 0
	for _, t := range topics {
		for _, slot := range t.Partitions {
			p := slot.Partition
			if slot.NoLocalReplica() {
				continue // served by other nodes
			}
			if p == nil || p.Err() != nil {
				offline++
				continue
			}
			idx := strconv.Itoa(int(slot.Index))
			ch <- prometheus.MustNewConstMetric(cc.hwm, prometheus.GaugeValue, float64(p.HighWatermark()), t.Name, idx)
			ch <- prometheus.MustNewConstMetric(cc.lso, prometheus.GaugeValue, float64(p.LastStableOffset()), t.Name, idx)
			ch <- prometheus.MustNewConstMetric(cc.start, prometheus.GaugeValue, float64(p.LogStartOffset()), t.Name, idx)
			ch <- prometheus.MustNewConstMetric(cc.size, prometheus.GaugeValue, float64(p.SizeBytes()), t.Name, idx)
		}
	}
	ch <- prometheus.MustNewConstMetric(cc.offline, prometheus.GaugeValue, float64(offline))
	cc.node.collect(ch, cc.c.Stats())
}

// nodeDescs are the node's replication metrics (cluster.NodeStats), read
// at scrape time.
type nodeDescs struct {
	leaders, underReplicated, notCaughtUp, quiesced, metaLeader *prometheus.Desc
	electionsStarted, electionsWon                              *prometheus.Desc
	messagesSent, messagesReceived, messagesDropped             *prometheus.Desc
	framesSent, framesReceived, bytesSent, bytesReceived        *prometheus.Desc
	peersGone                                                   *prometheus.Desc
}

func newNodeDescs() nodeDescs {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return nodeDescs{
		leaders:          d("cairn_cluster_leaders", "Partitions this node leads and serves."),
		underReplicated:  d("cairn_cluster_partitions_under_replicated", "Partitions this node leads with a replica it does not count in sync."),
		notCaughtUp:      d("cairn_cluster_replicas_not_caught_up", "Replicas of the partitions this node leads that it does not count in sync."),
		quiesced:         d("cairn_cluster_raft_groups_quiesced", "Raft groups on this node not ticking while idle."),
		metaLeader:       d("cairn_cluster_meta_leader", "Node id of the metadata group's leader as this node knows it, -1 unknown."),
		electionsStarted: d("cairn_cluster_elections_started_total", "Elections local partition replicas started, asking peers for votes."),
		electionsWon:     d("cairn_cluster_elections_won_total", "Terms in which a local partition replica became the ready leader."),
		messagesSent:     d("cairn_transport_raft_messages_sent_total", "Raft messages sent to other nodes."),
		messagesReceived: d("cairn_transport_raft_messages_received_total", "Raft messages received from other nodes."),
		messagesDropped:  d("cairn_transport_raft_messages_dropped_total", "Raft messages dropped: peer unknown or not connected, queue full, too large, connection lost."),
		framesSent:       d("cairn_transport_frames_sent_total", "Frames written to other nodes."),
		framesReceived:   d("cairn_transport_frames_received_total", "Frames read from other nodes."),
		bytesSent:        d("cairn_transport_sent_bytes_total", "Bytes written to other nodes, frame headers included."),
		bytesReceived:    d("cairn_transport_received_bytes_total", "Bytes read from other nodes."),
		peersGone:        d("cairn_transport_peers_gone_total", "Times another node was found gone: its connection lost, then its address refused a dial."),
	}
}

func (d nodeDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.leaders, d.underReplicated, d.notCaughtUp, d.quiesced, d.metaLeader,
		d.electionsStarted, d.electionsWon, d.messagesSent, d.messagesReceived, d.messagesDropped,
		d.framesSent, d.framesReceived, d.bytesSent, d.bytesReceived, d.peersGone} {
		ch <- desc
	}
}

func (d nodeDescs) collect(ch chan<- prometheus.Metric, st cluster.NodeStats) {
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	gauge(d.leaders, float64(st.Leaders))
	gauge(d.underReplicated, float64(st.UnderReplicated))
	gauge(d.notCaughtUp, float64(st.ReplicasNotCaughtUp))
	gauge(d.quiesced, float64(st.QuiescedGroups))
	gauge(d.metaLeader, float64(st.MetaLeader))
	counter(d.electionsStarted, st.ElectionsStarted)
	counter(d.electionsWon, st.ElectionsWon)
	t := st.Transport
	counter(d.messagesSent, t.MessagesSent)
	counter(d.messagesReceived, t.MessagesReceived)
	counter(d.messagesDropped, t.MessagesDropped)
	counter(d.framesSent, t.FramesSent)
	counter(d.framesReceived, t.FramesReceived)
	counter(d.bytesSent, t.BytesSent)
	counter(d.bytesReceived, t.BytesReceived)
	counter(d.peersGone, t.PeersGone)
}

// txnCollector counts the transactional ids this node coordinates, by
// state, at scrape time.
type txnCollector struct {
	co   *txn.Coordinator
	desc *prometheus.Desc
}

func newTxnCollector(co *txn.Coordinator) *txnCollector {
	return &txnCollector{co: co, desc: prometheus.NewDesc("cairn_transactions",
		"Transactional ids this node coordinates, by the state of their transaction.", []string{"state"}, nil)}
}

func (tc *txnCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tc.desc }

func (tc *txnCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range tc.co.CountByState() {
		ch <- prometheus.MustNewConstMetric(tc.desc, prometheus.GaugeValue, float64(n), state.String())
	}
}
