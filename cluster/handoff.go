package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3"
)

// A node about to stop hands the groups it leads to other voters first
// (a controlled shutdown): the others would otherwise wait an election
// timeout, or for the transport to find the process gone, and clients
// asking meanwhile would be told of the stopped leader.

// handOffPollInterval is how often HandOff looks at the leaderships it
// waits for: the metadata group's changes wake no LeadersChanged watcher.
const handOffPollInterval = 10 * time.Millisecond

// HandOffReport says what HandOff did: the groups whose leadership moved
// to another node and those left led here (no other in-sync voter, or
// the transfer did not finish in time), by name ("orders-0", "metadata").
type HandOffReport struct {
	Moved, Left []string
	Took        time.Duration
}

// handOff is one group HandOff moves.
type handOff struct {
	name  string
	group uint64
	to    uint64 // replica id of the transferee
}

// HandOff transfers the leadership of every group this node leads, the
// metadata group included, each to an in-sync voter on another node that
// the transport has not found gone (spreading them over those nodes),
// and waits until each has a leader elsewhere or ctx ends. The node keeps
// serving meanwhile: requests for a moved partition are answered as by a
// follower. A single node has nothing to hand off.
func (c *Cluster) HandOff(ctx context.Context) HandOffReport {
	var rep HandOffReport
	if !c.cfg.clustered() {
		return rep
	}
	started := c.env.Clock.Now()
	self := c.replicaID()
	given := map[uint64]int{}
	var pending []handOff
	plan := func(name string, group uint64, preferred []uint64) {
		var inSync []uint64
		if err := c.sched.Do(group, func(r *replica.Replica) { inSync = inSyncVoters(r.Status()) }); err != nil {
			rep.Left = append(rep.Left, name)
			return
		}
		inSync = slices.DeleteFunc(inSync, c.replicaGone)
		to := handOffTarget(preferredOrder(inSync, preferred), given)
		if to == 0 {
			c.env.Logger.Warn("stopping: no other in-sync voter to hand the leadership to; leaving it", "group", name)
			rep.Left = append(rep.Left, name)
			return
		}
		given[to]++
		pending = append(pending, handOff{name: name, group: group, to: to})
	}
	for _, t := range c.Topics() {
		for _, s := range t.Partitions {
			if s.Partition != nil && c.isSelf(c.leadership(s.Group).Leader) {
				plan(fmt.Sprintf("%s-%d", t.Name, s.Index), s.Group, c.placedReplicas(t.Name, s.Index))
			}
		}
	}
	if c.ctl.Leadership().Leader == self {
		plan("metadata", controller.GroupID, nil)
	}
	c.markHandingOff(pending)
	moved := c.awaitHandOffs(ctx, pending)
	c.markHandingOff(nil)
	for _, h := range pending {
		if moved[h.group] {
			rep.Moved = append(rep.Moved, h.name)
			continue
		}
		c.env.Logger.Warn("stopping: leadership transfer did not finish in time; leaving it", "group", h.name, "to_node", meta.NodeOf(h.to))
		rep.Left = append(rep.Left, h.name)
	}
	rep.Took = c.env.Clock.Now().Sub(started)
	return rep
}

// awaitHandOffs asks each group for its transfer, again every election
// timeout (raft drops a transfer that did not finish in one), until every
// group has a leader on another node or ctx ends; it returns the groups
// that moved.
func (c *Cluster) awaitHandOffs(ctx context.Context, pending []handOff) map[uint64]bool {
	moved := map[uint64]bool{}
	retry := time.Duration(c.cfg.RaftTickMs*int64(c.cfg.RaftElectionTicks)) * time.Millisecond
	var asked time.Time
	for {
		changed := c.LeadersChanged()
		left := 0
		for _, h := range pending {
			if moved[h.group] {
				continue
			}
			if l := c.groupLeadership(h.group); l.Leader != 0 && !c.isSelf(l.Leader) {
				moved[h.group] = true
				continue
			}
			left++
		}
		if left == 0 {
			return moved
		}
		if now := c.env.Clock.Now(); asked.IsZero() || now.Sub(asked) >= retry {
			asked = now
			for _, h := range pending {
				if !moved[h.group] {
					to := h.to
					// A group gone from the scheduler (its topic deleted) has no leader to wait for.
					if err := c.sched.Do(h.group, func(r *replica.Replica) { r.TransferLeader(to) }); err != nil {
						moved[h.group] = true
					}
				}
			}
		}
		timer := c.env.Clock.NewTimer(handOffPollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return moved
		case <-changed:
		case <-timer.C():
		}
		timer.Stop()
	}
}

// markHandingOff records the groups being handed off (none: the hand-off
// ended) and wakes the LeadersChanged watchers, as Leader changes.
func (c *Cluster) markHandingOff(pending []handOff) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	c.handingOff = map[uint64]bool{}
	for _, h := range pending {
		c.handingOff[h.group] = true
	}
	c.signalLeadersLocked()
}

// leadershipHanding is leadership, and whether the group is being handed
// off.
func (c *Cluster) leadershipHanding(group uint64) (replica.Leadership, bool) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return c.leaderships[group], c.handingOff[group]
}

// groupLeadership is this node's view of a group's leadership, the
// metadata group's included.
func (c *Cluster) groupLeadership(group uint64) replica.Leadership {
	if group == controller.GroupID {
		return c.ctl.Leadership()
	}
	return c.leadership(group)
}

// placedReplicas is a partition's replica ids in the applied placement,
// preferred leader first; nil when the state no longer holds it.
func (c *Cluster) placedReplicas(topic string, index int32) []uint64 {
	_, t, err := c.placedTopic(topic, index)
	if err != nil {
		return nil
	}
	return t.Partitions[index].Replicas
}

// inSyncVoters lists a leader's voters other than itself that are
// recently active and hold every committed entry, sorted: the replicas a
// transfer can go to without waiting for one to catch up. A follower's
// status has no progress, so none.
func inSyncVoters(st raft.Status) []uint64 {
	var out []uint64
	for id, pr := range st.Progress {
		if id != st.ID && !pr.IsLearner && pr.RecentActive && pr.Match >= st.GetCommit() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// preferredOrder orders candidates as they appear in preferred, those
// not in it last in their own order.
func preferredOrder(candidates, preferred []uint64) []uint64 {
	out := slices.Clone(candidates)
	rank := func(id uint64) int {
		if i := slices.Index(preferred, id); i >= 0 {
			return i
		}
		return len(preferred)
	}
	slices.SortStableFunc(out, func(a, b uint64) int { return rank(a) - rank(b) })
	return out
}

// handOffTarget picks the candidate given the fewest groups so far, the
// first in order among equals, so that a node's groups spread over the
// others rather than all landing on one; 0 when there is none.
func handOffTarget(candidates []uint64, given map[uint64]int) uint64 {
	var best uint64
	for _, id := range candidates {
		if best == 0 || given[id] < given[best] {
			best = id
		}
	}
	return best
}
