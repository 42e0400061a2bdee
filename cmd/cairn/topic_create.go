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
		partitions        int32
		replicationFactor int16
		configs           []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic with --partitions partitions and, optionally, topic configs given
as repeated --config key=value. On a cluster each partition has
--replication-factor replicas on as many nodes (default: the cluster's, three or
the node count if fewer); a single node holds one.`,
		Example: `  cairn topic create orders
  cairn topic create orders --partitions 6 --config retention.ms=604800000
  cairn topic create order-state --config cleanup.policy=compact
  cairn topic create payments --partitions 6 --replication-factor 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions < 1 {
				return fmt.Errorf("--partitions %d: must be at least 1", partitions)
			}
			if replicationFactor < 1 && replicationFactor != -1 {
				return fmt.Errorf("--replication-factor %d: must be at least 1 (or -1, the cluster's default)", replicationFactor)
			}
			configMap, err := cli.ParseConfigs(configs)
			if err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				return createTopic(ctx, cmd, admin, args[0], partitions, replicationFactor, configMap)
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	cmd.Flags().Int16Var(&replicationFactor, "replication-factor", -1, "replicas of each partition on a cluster (-1: the cluster's default)")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config as key=value (repeatable)")
	return cmd
}

func createTopic(ctx context.Context, cmd *cobra.Command, admin *kadm.Client, name string, partitions int32, replicationFactor int16, configs map[string]*string) error {
	response, err := admin.CreateTopic(ctx, partitions, replicationFactor, configs, name)
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
