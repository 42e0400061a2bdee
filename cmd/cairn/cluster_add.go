package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/cluster"
)

func newClusterAddNodeCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "add-node NODE",
		Short: "Wait for a node started with --join to be ACTIVE, then move a fair share of replicas onto it",
		Long: `Bring a new node into service. Start it first with "cairn serve --node-id NODE
--raft-addr HOST:PORT --join MEMBER:PORT" (any member's Raft address): it joins
as a learner of the metadata group (JOINING) and becomes ACTIVE once caught up.
This command waits for that, showing the node's state, then moves replicas
onto it until it holds its fair share (all replicas over the active nodes,
rounded down), each taken from the node holding the most, one per partition
(as move does: the new replica copies the partition, then the replica set
changes in one step; the preferred leader's place first, until the node has
its share of the partitions), shows the moves until they complete, and finally
hands every partition to its preferred leader (as rebalance-leaders does), so
the new node leads that share. Running it
again moves nothing once the node holds its share. Ctrl-C or --timeout stops
the wait, not the moves.`,
		Example: `  cairn cluster add-node 4 --timeout 10m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil {
				return fmt.Errorf("node %q: %w", args[0], err)
			}
			return withCluster(cmd, connection, func(ctx context.Context, admin *kadm.Client, client *kgo.Client) error {
				return addNode(ctx, cmd.OutOrStdout(), admin, client, int32(node))
			})
		},
	}
}

func addNode(ctx context.Context, out io.Writer, admin *kadm.Client, client *kgo.Client, node int32) error {
	if err := waitActive(ctx, out, admin, node); err != nil {
		return err
	}
	moves, err := spreadOnto(ctx, out, admin, node)
	if err != nil {
		return err
	}
	if err := waitMoves(ctx, out, admin, moves); err != nil {
		return err
	}
	md, err := admin.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster's metadata: %w", err)
	}
	if _, err := rebalanceLeaders(ctx, out, md, client); err != nil {
		return err
	}
	held := len(partitionsOn(md, node))
	_, err = fmt.Fprintf(out, "node %d holds %d replicas\n", node, held)
	return err
}

// waitActive polls the node's own state (the cairn.node.state broker
// config) until it is ACTIVE, printing each state seen.
func waitActive(ctx context.Context, out io.Writer, admin *kadm.Client, node int32) error {
	last := ""
	return poll(ctx, func() (bool, error) {
		states, err := nodeStates(ctx, admin, node)
		line := fmt.Sprintf("node %d is %s", node, states[node])
		if err != nil || states[node] == "" {
			line = fmt.Sprintf("node %d is not reachable yet (start it with --join)", node)
		}
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		return states[node] == "ACTIVE", nil
	})
}

// nodeStates asks each node for its state; a node that cannot answer
// is left out.
func nodeStates(ctx context.Context, admin *kadm.Client, nodes ...int32) (map[int32]string, error) {
	states := map[int32]string{}
	configs, err := admin.DescribeBrokerConfigs(ctx, nodes...)
	for _, rc := range configs {
		id, perr := strconv.ParseInt(rc.Name, 10, 32)
		if perr != nil || rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == nodeStateConfig && c.Value != nil {
				states[int32(id)] = *c.Value
			}
		}
	}
	return states, err
}

// spreadOnto plans the moves onto node (cluster.PlanSpread over the
// partitions not moving and the ACTIVE nodes) and asks for them.
func spreadOnto(ctx context.Context, out io.Writer, admin *kadm.Client, node int32) ([]cluster.PartitionReplicas, error) {
	md, err := admin.Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's metadata: %w", err)
	}
	states, err := nodeStates(ctx, admin, brokerIDs(md)...)
	if err != nil {
		return nil, fmt.Errorf("read the nodes' states: %w", err)
	}
	var active []int32
	for _, id := range brokerIDs(md) {
		if states[id] == "ACTIVE" {
			active = append(active, id)
		}
	}
	listed, err := moving(ctx, admin)
	if err != nil {
		return nil, err
	}
	var parts []cluster.PartitionReplicas
	for _, t := range md.Topics.Sorted() {
		for _, p := range t.Partitions.Sorted() {
			if _, busy := listed[t.Topic][p.Partition]; !busy {
				parts = append(parts, cluster.PartitionReplicas{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
			}
		}
	}
	moves := cluster.PlanSpread(parts, active, node)
	if len(moves) == 0 {
		_, err := fmt.Fprintf(out, "node %d holds its share of the replicas already\n", node)
		return nil, err
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, m := range moves {
		req.Assign(m.Topic, m.Partition, m.Replicas)
	}
	res, err := admin.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("move replicas onto node %d: %w", node, err)
	}
	var started []cluster.PartitionReplicas
	for _, m := range moves {
		if r := res[m.Topic][m.Partition]; r.Err != nil {
			fmt.Fprintf(out, "%s-%d: not moved: %v %s\n", m.Topic, m.Partition, r.Err, r.ErrMessage)
			continue
		}
		fmt.Fprintf(out, "moving %s-%d to nodes %v\n", m.Topic, m.Partition, m.Replicas)
		started = append(started, m)
	}
	return started, nil
}

// waitMoves shows the moves until none of them runs, then says which
// were cancelled (their replicas are not the target).
func waitMoves(ctx context.Context, out io.Writer, admin *kadm.Client, moves []cluster.PartitionReplicas) error {
	if len(moves) == 0 {
		return nil
	}
	set := kadm.TopicsSet{}
	for _, m := range moves {
		set.Add(m.Topic, m.Partition)
	}
	last := -1
	err := poll(ctx, func() (bool, error) {
		listed, err := admin.ListPartitionReassignments(ctx, set)
		if err != nil {
			return false, fmt.Errorf("follow the moves: %w", err)
		}
		running := 0
		for _, ps := range listed {
			running += len(ps)
		}
		if running != last {
			fmt.Fprintf(out, "  %d of %d moves running\n", running, len(moves))
			last = running
		}
		return running == 0, nil
	})
	if err != nil {
		return err
	}
	for _, m := range moves {
		if err := checkMoved(ctx, io.Discard, admin, m.Topic, m.Partition, m.Replicas); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(out, "moved %d partitions\n", len(moves))
	return err
}
