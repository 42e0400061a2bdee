package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/connectors"
)

func newConnectorStatusCommand(flags *connectorFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a connector's state and figures",
		Long: `Show a connector's definition (the DSN's password masked), state, last error,
and figures: the LSN confirmed to PostgreSQL (everything before it is in
the log), the server's LSN, the slot's lag in bytes (WAL the slot holds that
the log does not), the time since the last appended transaction committed,
events, transactions and heartbeats.`,
		Example: `  cairn connector status shop
  cairn connector status shop --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info connectors.Info
			if err := flags.call(cmd, "GET", "/"+args[0], nil, &info); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return printInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}
