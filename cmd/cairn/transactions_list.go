package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTransactionsListCommand(connection *clientFlags) *cobra.Command {
	var states []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids and their states",
		Long: `List the transactional ids every broker coordinates, one line per id in id
order: the id, a tab, the producer id, a tab, the state (Empty, Ongoing,
PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort), a tab and the
coordinator's node id.`,
		Example: `  cairn transactions list
  cairn transactions list --state Ongoing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				listed, err := admin.ListTransactions(ctx, nil, states)
				if err != nil {
					return fmt.Errorf("list transactions: %w", err)
				}
				for _, tx := range listed.Sorted() {
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\t%d\t%s\t%d\n", tx.TxnID, tx.ProducerID, tx.State, tx.Coordinator); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only transactions in these states")
	return cmd
}
