package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/internal/loadgen"
)

func newBenchConsumeCommand() *cobra.Command {
	var flags benchFlags
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Measure catch-up consume throughput",
		Long: `Read --topic from the log start of every partition to the high watermark it
had when the read began, and report records/s and MB/s (10^6 bytes of key and
value per second). The read stops early at --records or --duration.

The topic must hold records: produce them first with "cairn bench produce", or
pass --prefill N to produce N records before the read (untimed, with the
producer flags but acks=all, so the read covers every prefilled record).`,
		Example: `  cairn bench produce --duration 20s && cairn bench consume
  cairn bench consume --topic events --prefill 1000000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := flags.run(cmd, (*loadgen.Runner).Consume)
			if errors.Is(err, loadgen.ErrNoTopic) || errors.Is(err, loadgen.ErrNothingToRead) {
				return fmt.Errorf("%w; produce first with cairn bench produce, or pass --prefill N", err)
			}
			return err
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Int64Var(&flags.options.Prefill, "prefill", 0, "records to produce before the read, untimed")
	cmd.Flags().Int32Var(&flags.options.FetchPartitionBytes, "fetch-max-partition-bytes", 0,
		"most bytes one fetch returns of one partition (the consumer's FetchMaxPartitionBytes; 0: the client's default, 1 MiB)")
	return cmd
}
