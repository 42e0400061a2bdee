package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/quota"
)

func newQuotaRemoveCommand(connection *clientFlags) *cobra.Command {
	var entity quotaEntityFlags
	var keys []string
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove quotas of a user, a client id, or both",
		Long: `Remove the quotas --key names (all three when not given) of one entity.
Its clients then fall under the next entity in Kafka's order, if any
(docs/security.md, Quotas).`,
		Example: `  cairn quota remove --user alice
  cairn quota remove --default-user --key consumer_byte_rate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := entity.entity(cmd.Flags())
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				keys = []string{quota.ProducerByteRate, quota.ConsumerByteRate, quota.RequestPercentage}
			}
			ops := make([]kadm.AlterClientQuotaOp, len(keys))
			for i, k := range keys {
				if err := quota.ValidateValue(k, 1); err != nil {
					return err
				}
				ops[i] = kadm.AlterClientQuotaOp{Key: k, Remove: true}
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				if err := alterQuotas(ctx, client, e, ops); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "removed\t%s\t%s\n", formatEntity(e), strings.Join(keys, " "))
				return err
			})
		},
	}
	entity.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&keys, "key", nil, "the quotas to remove: producer_byte_rate, consumer_byte_rate, request_percentage (comma-separated or repeated; default all)")
	return cmd
}
