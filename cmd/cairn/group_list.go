package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupListCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List consumer groups and their states",
		Long: `List the cluster's consumer groups, one line per group in name order: the
name, a tab, the state (Empty, PreparingRebalance, CompletingRebalance, Stable
or Dead), a tab, and the protocol type ("consumer" for consumers, empty for
groups that only hold committed offsets).`,
		Example: `  cairn group list
  cairn group list | awk '$2 == "Empty"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				listed, err := admin.ListGroups(ctx)
				if err != nil {
					return fmt.Errorf("list groups: %w", err)
				}
				names := make([]string, 0, len(listed))
				for name := range listed {
					names = append(names, name)
				}
				sort.Strings(names)
				for _, name := range names {
					g := listed[name]
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", name, g.State, g.ProtocolType); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
