package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTopicListCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List topics and their partition counts",
		Long: `List the cluster's topics, internal ones excluded, one line per topic in name
order: the name, a tab, and the number of partitions.`,
		Example: `  cairn topic list
  cairn topic list | cut -f1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				topics, err := admin.ListTopics(ctx)
				if err != nil {
					return fmt.Errorf("list topics: %w", err)
				}
				out := cmd.OutOrStdout()
				for _, topic := range topics.Sorted() {
					if _, err := fmt.Fprintf(out, "%s\t%d\n", topic.Topic, len(topic.Partitions)); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
