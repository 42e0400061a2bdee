package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClusterCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show a Cairn cluster and move replicas and leaders between its nodes",
		Long: `Show the nodes of a Cairn cluster and what they lead, move a partition's
replicas to other nodes, hand partitions back to their preferred leaders, and
add (after it joined with "serve --join") or remove a node. Everything goes over the Kafka admin API (Metadata,
DescribeConfigs, AlterPartitionReassignments, ListPartitionReassignments,
ElectLeaders, UnregisterBroker), so any node's Kafka address will do.
Commands that wait show progress until done, at most --timeout; Ctrl-C stops
the wait, not the work, which goes on in the cluster.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster (and for a move or removal to finish)")
	cmd.AddCommand(
		newClusterStatusCommand(&connection),
		newClusterMoveCommand(&connection),
		newClusterRebalanceLeadersCommand(&connection),
		newClusterRemoveNodeCommand(&connection),
		newClusterAddNodeCommand(&connection),
	)
	return cmd
}

// withCluster runs fn with an admin client and the kgo client under it
// (for requests to one broker), bounded by --timeout and ended by an
// interrupt.
func withCluster(cmd *cobra.Command, connection *clientFlags, fn func(context.Context, *kadm.Client, *kgo.Client) error) error {
	// The waits poll Metadata, which the client would otherwise answer
	// from its cache for up to 5 s.
	client, err := connection.newClient(kgo.MetadataMinAge(pollInterval / 2))
	if err != nil {
		return err
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	admin.SetTimeoutMillis(int32(min(connection.timeout.Milliseconds(), 1<<31-1)))
	ctx, cancel := commandContext(cmd, connection.timeout)
	defer cancel()
	stopClosing := context.AfterFunc(ctx, client.Close)
	defer stopClosing()
	return stopError(ctx, fn(ctx, admin, client))
}

// pollInterval is how often the waiting commands ask the cluster again.
const pollInterval = 250 * time.Millisecond

// poll calls check every pollInterval until it reports done, fails, or
// ctx ends.
func poll(ctx context.Context, check func() (bool, error)) error {
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// moving lists the running moves of every topic.
func moving(ctx context.Context, admin *kadm.Client) (kadm.ListPartitionReassignmentsResponses, error) {
	md, err := admin.Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's metadata: %w", err)
	}
	set := kadm.TopicsSet{}
	for _, t := range md.Topics.Sorted() {
		for _, p := range t.Partitions.Sorted() {
			set.Add(t.Topic, p.Partition)
		}
	}
	listed, err := admin.ListPartitionReassignments(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("list the running moves: %w", err)
	}
	return listed, nil
}

// brokerIDs lists the node ids Metadata names, sorted.
func brokerIDs(md kadm.Metadata) []int32 {
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids
}
