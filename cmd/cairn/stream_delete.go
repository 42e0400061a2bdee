package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newStreamDeleteCommand() *cobra.Command {
	var flags streamFlags
	var hard bool
	var expected string
	cmd := &cobra.Command{
		Use:   "delete TOPIC/STREAM",
		Short: "Delete a stream",
		Long: `Delete a stream. A soft delete hides its events; the stream may be written
again, continuing its revisions. --hard deletes it for good: it can never be
read or written again. The topic's cleaner removes the events' records.
With --expected-revision the delete happens only if the stream is in that
state; otherwise the command exits 1 and says the stream's actual revision.`,
		Example: `  cairn stream delete orders/order-1
  cairn stream delete users/user-7 --hard --expected-revision 12`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			exp, err := parseExpected(expected)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := commandContext(cmd, flags.timeout)
			defer cancel()
			mode, how := client.SoftDelete, "deleted"
			if hard {
				mode, how = client.HardDelete, "deleted for good"
			}
			if _, err := c.DeleteStream(ctx, topic, stream, mode, exp); err != nil {
				return stopError(ctx, explain(err))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", how, args[0])
			return err
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().BoolVar(&hard, "hard", false, "delete for good: the stream can never be read or written again")
	cmd.Flags().StringVar(&expected, "expected-revision", "any", "any, no-stream, exists, or the revision of the stream's last event")
	return cmd
}
