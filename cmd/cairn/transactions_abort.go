package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTransactionsAbortCommand(connection *clientFlags) *cobra.Command {
	var topic string
	var partition int32
	var startOffset int64
	cmd := &cobra.Command{
		Use:   "abort --topic T --partition P --start-offset N",
		Short: "Abort the transaction left open on a partition",
		Long: `Abort a transaction that stays open on a partition (a hanging transaction:
its producer and coordinator are gone, and read_committed consumers of the
partition stop at its first offset): the producer whose open transaction starts
at --start-offset (see DescribeProducers) gets an ABORT marker on that
partition, written by the partition's leader. Transactions that their
coordinator still knows end by themselves at their timeout.`,
		Example: `  cairn transactions abort --topic orders --partition 3 --start-offset 1200`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				set := kadm.TopicsSet{}
				set.Add(topic, partition)
				described, err := admin.DescribeProducers(ctx, set)
				if err != nil {
					return fmt.Errorf("describe the producers of %s-%d: %w", topic, partition, err)
				}
				var found *kadm.DescribedProducer
				for _, p := range described.SortedProducers() {
					if p.Topic == topic && p.Partition == partition && p.CurrentTxnStartOffset == startOffset {
						found = &p
						break
					}
				}
				if found == nil {
					return fmt.Errorf("no transaction open on %s-%d starts at offset %d", topic, partition, startOffset)
				}
				responses, err := admin.WriteTxnMarkers(ctx, kadm.TxnMarkers{ProducerID: found.ProducerID, ProducerEpoch: found.ProducerEpoch,
					CoordinatorEpoch: found.CoordinatorEpoch, Topics: set})
				if err != nil {
					return fmt.Errorf("abort the transaction of producer %d on %s-%d: %w", found.ProducerID, topic, partition, err)
				}
				for _, r := range responses {
					for _, t := range r.Topics {
						for _, p := range t.Partitions {
							if p.Err != nil {
								return fmt.Errorf("abort the transaction of producer %d on %s-%d: %w", found.ProducerID, topic, partition, p.Err)
							}
						}
					}
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "aborted the transaction of producer %d epoch %d on %s-%d\n", found.ProducerID, found.ProducerEpoch, topic, partition)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "the partition's topic")
	cmd.Flags().Int32Var(&partition, "partition", 0, "the partition")
	cmd.Flags().Int64Var(&startOffset, "start-offset", -1, "the first offset of the open transaction")
	_ = cmd.MarkFlagRequired("topic")
	_ = cmd.MarkFlagRequired("start-offset")
	return cmd
}
