package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/internal/cli"
)

func newTopicCreateCommand(connection *clientFlags) *cobra.Command {
	var (
		partitions int32
		configs    []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic with --partitions partitions and, optionally, topic configs given
as repeated --config key=value. The replication factor is the cluster's default.`,
		Example: `  cairn topic create orders
  cairn topic create orders --partitions 6 --config retention.ms=604800000
  cairn topic create order-state --config cleanup.policy=compact`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions < 1 {
				return fmt.Errorf("--partitions %d: must be at least 1", partitions)
			}
			configMap, err := cli.ParseConfigs(configs)
			if err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				return createTopic(ctx, cmd, admin, args[0], partitions, configMap)
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config as key=value (repeatable)")
	return cmd
}

func createTopic(ctx context.Context, cmd *cobra.Command, admin *kadm.Client, name string, partitions int32, configs map[string]*string) error {
	// -1: let the cluster choose the replication factor.
	response, err := admin.CreateTopic(ctx, partitions, -1, configs, name)
	if err != nil {
		return fmt.Errorf("create topic %q: %w", name, cli.BrokerError(err, response.ErrMessage))
	}
	created := response.NumPartitions
	if created <= 0 { // brokers before Kafka 2.4 do not echo the count
		created = partitions
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "created topic %s with %d partitions, id %s\n",
		name, created, formatTopicID(response.ID))
	return err
}
