package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newClusterRemoveNodeCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-node NODE",
		Short: "Move every replica off a node and remove it from the cluster",
		Long: `Drain a node and remove it: it stops taking new replicas, each partition with
a replica there moves it to the least-loaded other node (as move does), and
once none is left the node is removed from the cluster and from the metadata
group's voters; it can then be stopped. The command shows the moves until
the node is gone (or --timeout; Ctrl-C stops the wait, not the removal, and
running it again follows the same removal). A partition whose replicas have
nowhere else to go (as many replicas as other nodes) refuses the removal.`,
		Example: `  cairn cluster remove-node 3 --timeout 10m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil {
				return fmt.Errorf("node %q: %w", args[0], err)
			}
			return withCluster(cmd, connection, func(ctx context.Context, admin *kadm.Client, client *kgo.Client) error {
				return removeNode(ctx, cmd, admin, client, int32(node))
			})
		},
	}
}

func removeNode(ctx context.Context, cmd *cobra.Command, admin *kadm.Client, client *kgo.Client, node int32) error {
	out := cmd.OutOrStdout()
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = node
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return fmt.Errorf("remove node %d: %w", node, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		msg := ""
		if resp.ErrorMessage != nil {
			msg = ": " + *resp.ErrorMessage
		}
		return fmt.Errorf("remove node %d: %w%s", node, err, msg)
	}
	fmt.Fprintf(out, "draining node %d\n", node)
	last, stranded := -1, 0
	return poll(ctx, func() (bool, error) {
		md, err := admin.Metadata(ctx)
		if err != nil {
			return false, fmt.Errorf("read the cluster's metadata: %w", err)
		}
		if !slices.Contains(brokerIDs(md), node) {
			_, err := fmt.Fprintf(out, "node %d removed; it can be stopped\n", node)
			return true, err
		}
		listed, err := moving(ctx, admin)
		if err != nil {
			return false, err
		}
		left := 0
		for _, ps := range listed {
			for _, p := range ps {
				if slices.Contains(p.RemovingReplicas, node) {
					left++
				}
			}
		}
		if left != last {
			fmt.Fprintf(out, "  %d partitions still moving off node %d\n", left, node)
			last = left
		}
		// No move left while partitions stay on the node: the cluster
		// cancelled them. Seen for strandedPolls polls in a row, so a
		// broker a moment behind the others does not decide it.
		if on := partitionsOn(md, node); left == 0 && len(on) > 0 {
			if stranded++; stranded >= strandedPolls {
				return false, fmt.Errorf("node %d stays DRAINING: the moves of %v off it were cancelled", node, on)
			}
		} else {
			stranded = 0
		}
		return false, nil
	})
}

// strandedPolls is how many polls in a row remove-node must see
// partitions left on the node with no move running before it says the
// moves were cancelled.
const strandedPolls = 8

// partitionsOn lists the partitions md places a replica of on node.
func partitionsOn(md kadm.Metadata, node int32) []string {
	var out []string
	for _, t := range md.Topics.Sorted() {
		for _, p := range t.Partitions.Sorted() {
			if slices.Contains(p.Replicas, node) {
				out = append(out, fmt.Sprintf("%s-%d", t.Topic, p.Partition))
			}
		}
	}
	return out
}
