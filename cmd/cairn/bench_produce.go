package main

import (
	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/internal/loadgen"
)

func newBenchProduceCommand() *cobra.Command {
	var flags benchFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Measure produce throughput and acknowledgement latency",
		Long: `Send records of --record-bytes random bytes to --topic (created with
--partitions when missing) from --producers clients, and report records/s,
MB/s (10^6 bytes of key and value per second), the latency from each produce
call to its acknowledgement (p50, p90, p99, p99.9, max), this process's CPU
seconds and, from --metrics-url, the broker's CPU seconds and memory.

With --acks all an acknowledgement means the record is on stable storage. With
--rate the records are paced at a fixed total rate and each latency runs from
the record's due time, which gives latency at a chosen load rather than at
saturation. Without it, latency includes the wait in the client's buffer.

The command exits 1 if any record failed or has an unknown outcome, after
printing the summary.`,
		Example: `  cairn bench produce
  cairn bench produce --record-bytes 100 --acks 1 --duration 20s --json
  cairn bench produce --rate 20000 --partitions 16 --producers 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return flags.run(cmd, (*loadgen.Runner).Produce)
		},
	}
	flags.register(cmd.Flags())
	return cmd
}
