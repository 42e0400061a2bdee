package main

import (
	"github.com/spf13/cobra"
)

func newTransactionsCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "transactions",
		Short: "List, describe and abort Kafka transactions",
		Long: `List and describe the transactions of transactional producers, and abort a
transaction left open on a partition, on any cluster that speaks the Kafka
protocol (the commands of Kafka's kafka-transactions.sh). Errors the broker
returns are printed and the command exits 1.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.AddCommand(
		newTransactionsListCommand(&connection),
		newTransactionsDescribeCommand(&connection),
		newTransactionsAbortCommand(&connection),
	)
	return cmd
}
