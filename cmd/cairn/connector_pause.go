package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newConnectorPauseCommand is `pause` (pause) or `resume` (!pause).
func newConnectorPauseCommand(flags *connectorFlags, pause bool) *cobra.Command {
	verb, done, long := "resume", "resumed", `Resume a paused connector: it continues from what its topics hold.`
	if pause {
		verb, done, long = "pause", "paused", `Pause a connector: it stops streaming; its slot keeps the WAL since its last
confirmed position, so the database's disk grows until it resumes.`
	}
	return &cobra.Command{
		Use:     verb + " NAME",
		Short:   fmt.Sprintf("%s%s a connector", string(verb[0]-'a'+'A'), verb[1:]),
		Long:    long,
		Example: "  cairn connector " + verb + " shop",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.call(cmd, "POST", "/"+args[0]+"/"+verb, nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", done, args[0])
			return err
		},
	}
}
