package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairnlog/cairn/internal/loadgen"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce, consume and end-to-end performance",
		Long: `Measure a cluster with synthetic load: produce throughput and
acknowledgement latency, catch-up consume throughput, and end-to-end latency
from send to receipt.

Every run stops at --records or --duration, whichever comes first. Progress
goes to stderr once a second when stderr is a terminal, or always with
--progress; the summary goes to stdout, as text or with --json as one JSON
object. When --metrics-url answers, the summary adds the broker's CPU seconds
and resident memory over the run, read from its Prometheus page.

Ctrl-C (or SIGTERM) stops sending and waits at most a second for the records
already sent. A record sent but never answered, or answered with a timeout or
a lost connection, is counted as unknown, not as an error: it may be in the
log. Errors are records the client or the broker refused.

Figures from a shared machine are noisy: compare them with a reference
measured in the same run (bench/run does), not with a fixed number.`,
		Example: `  cairn bench produce --record-bytes 1024 --duration 20s
  cairn bench produce --acks 1 --partitions 16 --producers 4 --json
  cairn bench consume --prefill 1000000
  cairn bench e2e --rate 10000 --duration 30s
  cairn bench append --writers 32
  cairn bench read-stream --events 1000 --other-events 1000000`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newBenchProduceCommand(), newBenchConsumeCommand(), newBenchEndToEndCommand(),
		newBenchAppendCommand(), newBenchReadStreamCommand())
	return cmd
}

// benchFlags are the flags every bench subcommand shares.
type benchFlags struct {
	connection clientFlags
	options    loadgen.Options
	json       bool
	progress   bool
	metricsURL string
}

// register adds the flags that describe the load; producer settings are
// separate because a read-only run uses them only to prefill.
func (b *benchFlags) register(flags *pflag.FlagSet) {
	b.connection.register(flags, "how long the run waits with records outstanding and no answer from the cluster before it stops and counts them unknown; also bounds e2e deliveries after the last send and each topic lookup")
	o := &b.options
	flags.StringVar(&o.Topic, "topic", "bench", "topic to use")
	flags.Int32Var(&o.Partitions, "partitions", 1, "partitions of the topic when it is created; an existing topic keeps its own")
	flags.IntVar(&o.RecordBytes, "record-bytes", 1024, "size of each record's value, random bytes")
	flags.Int64Var(&o.Records, "records", 1_000_000, "records to send (or read); the run stops here or at --duration")
	flags.DurationVar(&o.Duration, "duration", time.Minute, "longest the run sends (or reads); it stops here or at --records")
	flags.IntVar(&o.Keys, "keys", 0, "number of distinct keys, used in turn; 0 sends null keys")
	flags.IntVar(&o.Producers, "producers", 1, "concurrent producer clients")
	flags.Float64Var(&o.RatePerSecond, "rate", 0, "total records per second, paced; latency then runs from each record's due time (0: as fast as possible)")
	flags.BoolVar(&b.json, "json", false, "print the summary as one JSON object")
	flags.BoolVar(&b.progress, "progress", false, "report progress on stderr every second even when it is not a terminal")
	flags.StringVar(&b.metricsURL, "metrics-url", "http://127.0.0.1:8080/metrics", "broker Prometheus page for its CPU and memory figures (empty: none)")

	p := &o.Producer
	flags.StringVar(&p.Acks, "acks", "all", "acknowledgement to wait for: all (durable, idempotent), 1 or 0")
	flags.StringVar(&p.Compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	flags.DurationVar(&p.Linger, "linger", 0, "how long a partition's batch waits for more records before it is sent")
	flags.Int32Var(&p.BatchBytes, "batch-bytes", 1<<20, "largest record batch, before compression")
	flags.IntVar(&p.MaxInflight, "max-inflight", 0, "produce requests in flight per broker with --acks 1 or 0 (0: the client's default)")
	flags.IntVar(&p.BufferedRecords, "buffered-records", 0, "records a client holds unacknowledged before sends block (0: the client's default)")
}

// runner builds the load runner for cmd's streams.
func (b *benchFlags) runner(cmd *cobra.Command) *loadgen.Runner {
	runner := &loadgen.Runner{
		Dial:         b.connection.newClient,
		Notes:        cmd.ErrOrStderr(),
		MetricsURL:   b.metricsURL,
		AdminTimeout: b.connection.timeout,
	}
	if b.progress || isTerminal(cmd.ErrOrStderr()) {
		runner.Progress = cmd.ErrOrStderr()
	}
	return runner
}

// run validates the flags, runs workload until it ends or an interrupt
// stops it, and prints the summary, which a run that failed records also
// has.
func (b *benchFlags) run(cmd *cobra.Command,
	workload func(*loadgen.Runner, context.Context, loadgen.Options) (loadgen.Summary, error),
) error {
	if b.connection.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", b.connection.timeout)
	}
	options := b.options
	options.DrainTimeout = b.connection.timeout
	ctx, stop := interruptContext(cmd.Context())
	defer stop()
	summary, err := workload(b.runner(cmd), ctx, options)
	if summary.Workload == "" {
		return stopError(ctx, err)
	}
	var writeErr error
	if b.json {
		writeErr = summary.WriteJSON(cmd.OutOrStdout())
	} else {
		writeErr = summary.WriteText(cmd.OutOrStdout())
	}
	if err != nil {
		return stopError(ctx, err)
	}
	return writeErr
}
