package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newClusterRebalanceLeadersCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rebalance-leaders",
		Short: "Hand every partition back to its preferred leader",
		Long: `Ask every node to hand the partitions it leads to their preferred leaders
(the first replica placed, spread evenly over the nodes when topics are
created), as after a node's restart left its partitions led elsewhere. A
partition whose preferred leader's node is not active stays where it is.
The command lists the transfers asked for; they complete within moments.`,
		Example: `  cairn cluster rebalance-leaders`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, connection, func(ctx context.Context, admin *kadm.Client, client *kgo.Client) error {
				md, err := admin.Metadata(ctx)
				if err != nil {
					return fmt.Errorf("read the cluster's metadata: %w", err)
				}
				out := cmd.OutOrStdout()
				n, err := rebalanceLeaders(ctx, out, md, client)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%d transfers\n", n)
				return err
			})
		},
	}
}

// rebalanceLeaders asks every broker md names to hand the partitions it
// leads to their preferred leaders (ElectLeaders, preferred), prints each
// transfer asked for or refused, and returns how many it asked for.
func rebalanceLeaders(ctx context.Context, out io.Writer, md kadm.Metadata, client *kgo.Client) (int, error) {
	n := 0
	for _, id := range brokerIDs(md) {
		req := kmsg.NewPtrElectLeadersRequest()
		req.ElectionType = 0 // preferred
		resp, err := req.RequestWith(ctx, client.Broker(int(id)))
		if err != nil {
			return n, fmt.Errorf("node %d: %w", id, err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					fmt.Fprintf(out, "%s-%d: %v\n", t.Topic, p.Partition, err)
					continue
				}
				fmt.Fprintf(out, "%s-%d: node %d hands over to its preferred leader\n", t.Topic, p.Partition, id)
				n++
			}
		}
	}
	return n, nil
}
