package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConnectorDeleteCommand(flags *connectorFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a connector",
		Long: `Delete a connector: it stops and its definition goes. Its topics, and its
replication slot and publication in PostgreSQL, stay: drop the slot
(SELECT pg_drop_replication_slot('cairn_NAME')) or it holds WAL forever.`,
		Example: "  cairn connector delete shop",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.call(cmd, "DELETE", "/"+args[0], nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return err
		},
	}
}
