package main

import (
	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/internal/loadgen"
)

func newBenchEndToEndCommand() *cobra.Command {
	var flags benchFlags
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Measure end-to-end latency from send to receipt",
		Long: `Start a consumer at the high watermarks of --topic, then produce records whose
value begins with their send time, and report the time from send to receipt
(p50, p90, p99, p99.9, max) with the delivered records/s and MB/s.

A consumer sees a record only once it is below the high watermark, which on
Cairn is the synced log end, so the latency includes the sync whatever --acks
says. Use --rate for latency at a chosen load; without it the producers run
flat out and the latency is mostly queueing. Use a topic of its own: any other
record appended meanwhile would be read as a timestamp. Values must be at least
8 bytes.`,
		Example: `  cairn bench e2e --rate 10000 --duration 30s
  cairn bench e2e --topic bench-e2e --rate 2000 --record-bytes 100 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return flags.run(cmd, (*loadgen.Runner).EndToEnd)
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Int32Var(&flags.options.FetchPartitionBytes, "fetch-max-partition-bytes", 0,
		"most bytes one fetch returns of one partition (the consumer's FetchMaxPartitionBytes; 0: the client's default, 1 MiB)")
	return cmd
}
