package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// readPageEventsMax is the server's page size; --max below it asks for
// only the events wanted.
const readPageEventsMax = 1000

func newStreamReadCommand() *cobra.Command {
	var flags streamFlags
	var from uint64
	var backwards, asJSON bool
	var maxEvents int64
	cmd := &cobra.Command{
		Use:   "read TOPIC/STREAM",
		Short: "Read a stream's events",
		Long: `Print a stream's events, oldest first (or newest first with --backwards),
page by page, one per line: stream, revision, type, id, time and data
separated by tabs (newlines and tabs in the data escaped as \n and \t), or
with --json one JSON object per line: topic, stream, revision, partition,
offset, id, type, time, content_type, data (the JSON value itself when the
data is JSON, else a string; data_base64 beside it when it is not UTF-8)
and metadata.`,
		Example: `  cairn stream read orders/order-1
  cairn stream read orders/order-1 --backwards --max 1 --json
  cairn stream read orders/order-1 --from 10 --max 5`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			if maxEvents < 0 {
				return fmt.Errorf("--max %d: want 0 (all) or more", maxEvents)
			}
			var opts []client.ReadOption
			if cmd.Flags().Changed("from") {
				opts = append(opts, client.FromRevision(from))
			}
			if backwards {
				opts = append(opts, client.Backwards())
			}
			if maxEvents > 0 && maxEvents < readPageEventsMax {
				opts = append(opts, client.MaxCount(uint32(maxEvents)))
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := commandContext(cmd, flags.timeout)
			defer cancel()
			printer := eventPrinter{out: cmd.OutOrStdout(), json: asJSON}
			printed := int64(0)
			for ev, err := range c.ReadStreamAll(ctx, topic, stream, opts...) {
				if err != nil {
					return stopError(ctx, explain(err))
				}
				if err := printer.print(ev); err != nil {
					return err
				}
				printed++
				if printed == maxEvents {
					break
				}
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Uint64Var(&from, "from", 0, "first revision to read (default: the start, or the end with --backwards)")
	cmd.Flags().BoolVar(&backwards, "backwards", false, "newest first")
	cmd.Flags().Int64Var(&maxEvents, "max", 0, "print at most this many events; 0 is all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event")
	return cmd
}
