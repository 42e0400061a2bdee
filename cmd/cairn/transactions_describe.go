package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTransactionsDescribeCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe ID",
		Short: "Show a transactional id's producer, state and partitions",
		Long: `Show a transactional id's coordinator, producer id and epoch, state, timeout,
the start of its ongoing transaction and the partitions in it.`,
		Example: `  cairn transactions describe orders-processor`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				described, err := admin.DescribeTransactions(ctx, args[0])
				if err != nil {
					return fmt.Errorf("describe transaction %q: %w", args[0], err)
				}
				tx, ok := described[args[0]]
				switch {
				case !ok:
					return fmt.Errorf("describe transaction %q: no answer from the broker", args[0])
				case tx.Err != nil:
					return fmt.Errorf("describe transaction %q: %w", args[0], tx.Err)
				}
				started := "-"
				if tx.StartTimestamp >= 0 {
					started = time.UnixMilli(tx.StartTimestamp).UTC().Format(time.RFC3339Nano)
				}
				var parts []string
				for _, tp := range tx.Topics.Sorted() {
					for _, p := range tp.Partitions {
						parts = append(parts, fmt.Sprintf("%s-%d", tp.Topic, p))
					}
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(),
					"transactional id: %s\ncoordinator:      %d\nproducer:         %d epoch %d\nstate:            %s\ntimeout:          %d ms\nstarted:          %s\npartitions:       %s\n",
					tx.TxnID, tx.Coordinator, tx.ProducerID, tx.ProducerEpoch, tx.State, tx.TimeoutMillis, started, orDash(strings.Join(parts, " ")))
				return err
			})
		},
	}
}
