package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/connectors"
)

func newConnectorListCommand(flags *connectorFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List connectors",
		Long: `List the connectors, one line each in name order: name, type, state
(streaming, starting, restarting, paused, failed), events appended and the
slot's lag in bytes, separated by tabs.`,
		Example: `  cairn connector list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []connectors.Info
			if err := flags.call(cmd, "GET", "", nil, &list); err != nil {
				return err
			}
			for _, c := range list {
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%d\t%d\n", c.Definition.Name, c.Definition.Type, c.State, c.Metrics.Events, c.Metrics.SlotLagBytes); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
