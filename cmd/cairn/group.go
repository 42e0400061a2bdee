package main

import (
	"github.com/spf13/cobra"
)

func newGroupCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, reset and delete consumer groups",
		Long: `List, describe, reset and delete consumer groups on any cluster that speaks the
Kafka protocol. Errors the broker returns (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND,
...) are printed and the command exits 1.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.AddCommand(
		newGroupListCommand(&connection),
		newGroupDescribeCommand(&connection),
		newGroupResetOffsetsCommand(&connection),
		newGroupDeleteCommand(&connection),
	)
	return cmd
}
