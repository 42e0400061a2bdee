package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// migratedSuffix is the suffix a legacy single node's metadata files
// (controller.LegacyClusterFile, controller.LegacyTopicsFile) take once
// migrated into the metadata group. Part of the on-disk format.
const migratedSuffix = ".migrated"

// leadingWaitMax bounds the wait at start for the one-voter metadata group
// to elect this node and apply its log: it campaigns at once, so only a
// stuck disk makes it long.
const leadingWaitMax = 30 * time.Second

// idleInterval is the tick of a single node's scheduler and the period of
// its controller's membership duties. A one-voter group campaigns at once
// and has no peer to send heartbeats to, elect against or promote, so its
// timers only wake goroutines for nothing; and on a test's manual clock a
// timer due every 50 ms would be taken for the one the test waits to see
// armed.
const idleInterval = time.Hour

// metaNodeID is this node's id in the metadata group, whose node ids start
// at 1; clients keep seeing Config.NodeID (0 by default).
func (c Config) metaNodeID() int32 { return max(c.NodeID, 1) }

// noPeers is the Sender of a single node's scheduler: its groups have no
// replica elsewhere, so there is nothing to send.
type noPeers struct{}

func (noPeers) Send(uint64, []*raftpb.Message) {}

// openMeta opens the node's identity and its one-voter metadata group on a
// scheduler the cluster owns, waits until the group has applied its log,
// and retires a migrated legacy directory's files.
func (c *Cluster) openMeta(names []string) error {
	if c.cfg.clustered() {
		return c.openNode(names)
	}
	ident, boot, err := c.identity(names)
	if err != nil {
		return err
	}
	sched, err := replica.NewScheduler(c.env, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: idleInterval}, noPeers{})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ctl, err := controller.Open(controller.Config{Env: c.env, DataDir: c.cfg.DataDir, Identity: ident,
		Bootstrap: boot, Scheduler: sched, OnApplied: c.signalApplied, MembershipInterval: idleInterval})
	if err != nil {
		sched.Close()
		return fmt.Errorf("cluster: open the metadata group: %w", err)
	}
	c.sched, c.ctl = sched, ctl
	ctx, cancel := env.WithTimeout(context.Background(), c.env.Clock, leadingWaitMax)
	defer cancel()
	if err := ctl.WaitLeading(ctx); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return c.retireLegacyFiles()
}

// identity reads node.json, or makes a new node's identity: from a legacy
// directory's cluster.json (its cluster id, and the state migrated from it
// and topics.json) or with a new cluster id. A new node's data directory is
// checked before anything is written: a partition directory the new state
// does not own (topics.json lost, node.json and meta/ lost, a wrong data
// directory) refuses the start.
func (c *Cluster) identity(names []string) (controller.Identity, *metav1.State, error) {
	fsys, dir, node := c.env.FS, c.cfg.DataDir, c.cfg.metaNodeID()
	ident, err := controller.OpenIdentity(fsys, dir, node, "")
	if err == nil || !errors.Is(err, controller.ErrNoIdentity) {
		return ident, nil, err
	}
	boot, err := controller.MigrateLegacyDir(fsys, dir, &metav1.Broker{NodeId: node})
	var clusterID string
	switch {
	case errors.Is(err, controller.ErrNoLegacy):
		boot = nil
		if clusterID, err = controller.NewClusterID(c.env); err != nil {
			return ident, nil, err
		}
	case err != nil:
		return ident, nil, fmt.Errorf("cluster: migrate the legacy metadata files: %w", err)
	default:
		clusterID = boot.ClusterId
		c.env.Logger.Info("migrating cluster.json and topics.json into the metadata group", "topics", len(boot.Topics))
	}
	if plan := planDataDir(names, boot.GetTopics()); len(plan.unknown) > 0 {
		return ident, nil, unknownPartitionsError(dir, plan.unknown)
	}
	ident, err = controller.OpenIdentity(fsys, dir, node, clusterID)
	return ident, boot, err
}

// retireLegacyFiles renames cluster.json and topics.json to their
// .migrated names once the metadata group holds their contents (node.json
// is written): a start that finds node.json ignores them, so a crash before
// or between the renames only has the next start rename them again.
func (c *Cluster) retireLegacyFiles() error {
	renamed := false
	for _, name := range []string{controller.LegacyTopicsFile, controller.LegacyClusterFile} {
		from := path.Join(c.cfg.DataDir, name)
		err := c.env.FS.Rename(from, from+migratedSuffix)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cluster: retire the migrated %s: %w", name, err)
		}
		renamed = true
	}
	if !renamed {
		return nil
	}
	if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
		return fmt.Errorf("cluster: retire the migrated metadata files: %w", err)
	}
	return nil
}

// closeMeta closes the metadata group, then its scheduler (and with the
// controller, the meta log); on a cluster node the leader table's
// goroutines stop first and the transport closes last.
func (c *Cluster) closeMeta() {
	if c.node != nil {
		c.node.stopLoops()
	}
	if c.ctl != nil {
		c.ctl.Close()
	}
	if c.sched != nil {
		c.sched.Close()
	}
	if c.node != nil {
		c.node.closeTransport()
	}
}

// signalApplied is the controller's OnApplied: it runs on the group's
// worker, so it only wakes the replica manager.
func (c *Cluster) signalApplied(uint64) {
	select {
	case c.applied <- struct{}{}:
	default:
	}
}

// propose has the metadata group apply cmd and returns its result once
// this node applied it; a refusal is the cluster's error for it.
func (c *Cluster) propose(cmd *metav1.Command) (*metav1.Result, error) {
	res, err := c.ctl.Propose(context.Background(), cmd)
	if err != nil {
		return nil, err
	}
	if err := meta.ResultError(res); err != nil {
		return nil, clusterError(err)
	}
	return res, nil
}

// metaErrors maps the metadata group's refusals to the errors the front
// ends map to Kafka error codes. The others (invalid topic, invalid config,
// policy violation) share their sentinels already.
var metaErrors = []struct{ from, to error }{
	{meta.ErrTopicExists, ErrTopicExists},
	{meta.ErrUnknownTopic, ErrUnknownTopic},
	{meta.ErrInvalidPartitions, ErrInvalidPartitions},
}

func clusterError(err error) error {
	for _, m := range metaErrors {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %s", m.to, strings.TrimPrefix(err.Error(), m.from.Error()+": "))
		}
	}
	return err
}

// NextProducerID hands out a producer id never used before in the cluster:
// from a block the metadata group allocated to this node. The rest of a
// block is not used after a restart.
func (c *Cluster) NextProducerID() (int64, error) {
	c.producerMu.Lock()
	defer c.producerMu.Unlock()
	if c.nextProducerID >= c.producerIDEnd {
		res, err := c.propose(&metav1.Command{Command: &metav1.Command_AllocateProducerIds{
			AllocateProducerIds: &metav1.AllocateProducerIDs{NodeId: c.cfg.metaNodeID(), Count: meta.ProducerIDBlock}}})
		if err != nil {
			return -1, fmt.Errorf("allocate producer ids: %w", err)
		}
		c.nextProducerID, c.producerIDEnd = res.FirstProducerId, res.FirstProducerId+meta.ProducerIDBlock
	}
	id := c.nextProducerID
	c.nextProducerID++
	return id, nil
}
