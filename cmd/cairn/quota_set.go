package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
	"github.com/cairnlog/cairn/quota"
)

func newQuotaSetCommand(connection *clientFlags) *cobra.Command {
	var entity quotaEntityFlags
	var producerByteRate, consumerByteRate int64
	var requestPercentage float64
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Set quotas of a user, a client id, or both",
		Long: `Set the quotas given of one entity; its other quotas are left as they are.
A client over a quota is answered at once with the time to back off and
served nothing more until then.`,
		Example: `  cairn quota set --user alice --producer-byte-rate 1048576
  cairn quota set --default-user --consumer-byte-rate 5242880
  cairn quota set --user alice --client-id reports --request-percentage 25
  cairn quota set --default-client-id --producer-byte-rate 524288`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := entity.entity(cmd.Flags())
			if err != nil {
				return err
			}
			var ops []kadm.AlterClientQuotaOp
			if cmd.Flags().Changed("producer-byte-rate") {
				ops = append(ops, kadm.AlterClientQuotaOp{Key: quota.ProducerByteRate, Value: float64(producerByteRate)})
			}
			if cmd.Flags().Changed("consumer-byte-rate") {
				ops = append(ops, kadm.AlterClientQuotaOp{Key: quota.ConsumerByteRate, Value: float64(consumerByteRate)})
			}
			if cmd.Flags().Changed("request-percentage") {
				ops = append(ops, kadm.AlterClientQuotaOp{Key: quota.RequestPercentage, Value: requestPercentage})
			}
			if len(ops) == 0 {
				return errors.New("give at least one of --producer-byte-rate, --consumer-byte-rate, --request-percentage")
			}
			for _, op := range ops {
				if err := quota.ValidateValue(op.Key, op.Value); err != nil {
					return err
				}
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				if err := alterQuotas(ctx, client, e, ops); err != nil {
					return err
				}
				var set []string
				for _, op := range ops {
					set = append(set, fmt.Sprintf("%s=%s", op.Key, formatQuotaValue(op.Value)))
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "set\t%s\t%s\n", formatEntity(e), strings.Join(set, " "))
				return err
			})
		},
	}
	entity.register(cmd.Flags())
	cmd.Flags().Int64Var(&producerByteRate, "producer-byte-rate", 0, "bytes per second the entity may produce")
	cmd.Flags().Int64Var(&consumerByteRate, "consumer-byte-rate", 0, "bytes per second the entity may fetch")
	cmd.Flags().Float64Var(&requestPercentage, "request-percentage", 0, "percent of one request handler's time the entity's requests may take")
	return cmd
}

// alterQuotas applies ops to one entity.
func alterQuotas(ctx context.Context, client *kgo.Client, e kadm.ClientQuotaEntity, ops []kadm.AlterClientQuotaOp) error {
	altered, err := kadm.NewClient(client).AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: e, Ops: ops}})
	if err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	if len(altered) != 1 {
		return fmt.Errorf("alter client quotas: %d answers for one entity", len(altered))
	}
	if err := cli.BrokerError(altered[0].Err, altered[0].ErrMessage); err != nil {
		return fmt.Errorf("alter client quotas of %s: %w", e, err)
	}
	return nil
}
