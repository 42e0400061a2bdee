package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/internal/cli"
)

func main() {
	if err := newRootCommand(os.LookupEnv).Execute(); err != nil {
		// One line, so scripts can show it as is.
		fmt.Fprintln(os.Stderr, "cairn:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

// newRootCommand builds the cairn command tree. lookupEnv supplies the
// CAIRN_* variables that stand in for flags; tests pass a map.
func newRootCommand(lookupEnv cli.LookupEnv) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Cairn: a durable event log that speaks the Kafka protocol",
		Long: `Cairn: a durable event log that speaks the Kafka protocol.

Every flag can also be set in the environment as CAIRN_ and the flag name in
upper case with dashes turned into underscores: --brokers is CAIRN_BROKERS,
--data-dir is CAIRN_DATA_DIR. A flag given on the command line wins over the
environment. A slice flag such as --brokers reads a comma-separated list from
its variable; a repeatable flag such as --header reads a single item. One
exception: user create's --data-dir counts only on the command line.`,
		Example: `  cairn serve --data-dir /var/lib/cairn
  cairn topic create orders --partitions 3
  printf 'order-1:created\n' | cairn produce orders --key-separator :
  cairn consume orders --from beginning --until-end --json
  cairn group describe billing
  cairn stream append orders/order-1 --type OrderPlaced --data '{"sku":"tea"}'
  CAIRN_BROKERS=10.0.0.5:9092 cairn topic list`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cli.BindEnv(cmd.Flags(), lookupEnv)
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(
		newServeCommand(),
		newTopicCommand(),
		newACLCommand(),
		newQuotaCommand(),
		newClusterCommand(),
		newProduceCommand(),
		newConsumeCommand(),
		newGroupCommand(),
		newTransactionsCommand(),
		newUserCommand(),
		newStreamCommand(),
		newConnectorCommand(),
		newVersionCommand(),
		newBenchCommand(),
	)
	return root
}
