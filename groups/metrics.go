package groups

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
)

// GroupOffsets is one group's committed offsets, for lag.
type GroupOffsets struct {
	Group   string
	State   string
	Members int
	Offsets map[TopicPartition]OffsetCommit
}

// Snapshot copies every group's state and committed offsets.
func (co *Coordinator) Snapshot(ctx context.Context) ([]GroupOffsets, error) {
	var out []GroupOffsets
	err := co.do(ctx, func(int64) {
		for _, name := range co.machine.sortedGroupNames() {
			g := co.machine.groups[name]
			offsets := make(map[TopicPartition]OffsetCommit, len(g.offsets))
			for tp, oc := range g.offsets {
				offsets[tp] = oc
			}
			state := g.state.String()
			if g.consumer != nil {
				state = g.consumer.state()
			}
			out = append(out, GroupOffsets{Group: name, State: state, Members: g.liveMembers(), Offsets: offsets})
		}
	})
	return out, err
}

// collectWaitMax bounds how long a scrape waits for the driver.
const collectWaitMax = 5 * time.Second

var (
	lagDesc = prometheus.NewDesc("cairn_group_lag_records",
		"Records between a group's committed offset and the partition's high watermark.",
		[]string{"group", "topic", "partition"}, nil)
	membersDesc    = prometheus.NewDesc("cairn_group_members", "Live members of a consumer group.", []string{"group", "state"}, nil)
	groupsDesc     = prometheus.NewDesc("cairn_groups", "Consumer groups held by the coordinator, empty ones included.", nil, nil)
	rebalancesDesc = prometheus.NewDesc("cairn_group_rebalances_total",
		"Rebalances completed (generations handed out) since start.", nil, nil)
)

type collector struct {
	co      *Coordinator
	cluster *cluster.Cluster
}

// NewCollector reports lag per group and partition, members per group and
// rebalances.
func NewCollector(co *Coordinator, c *cluster.Cluster) prometheus.Collector {
	return &collector{co: co, cluster: c}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- membersDesc
	ch <- groupsDesc
	ch <- rebalancesDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := env.WithTimeout(context.Background(), c.co.clock, collectWaitMax)
	defer cancel()
	snapshot, err := c.co.Snapshot(ctx)
	if err != nil {
		return
	}
	stats, err := c.co.Stats(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(groupsDesc, prometheus.GaugeValue, float64(len(snapshot)))
	ch <- prometheus.MustNewConstMetric(rebalancesDesc, prometheus.CounterValue, float64(stats.Rebalances))
	for _, g := range snapshot {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(g.Members), g.Group, g.State)
		for tp, oc := range g.Offsets {
			p, err := c.cluster.Partition(tp.Topic, tp.Partition)
			if err != nil {
				continue
			}
			lag := max(p.HighWatermark()-oc.Offset, 0)
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), g.Group, tp.Topic, itoa(tp.Partition))
		}
	}
}

func itoa(n int32) string { return strconv.FormatInt(int64(n), 10) }
