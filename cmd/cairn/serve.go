package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/server"
)

func newServeCommand() *cobra.Command {
	cfg := server.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a single-node Cairn broker",
		Long: `Run a single-node Cairn broker: a durable, segmented log served over the Kafka
protocol on --kafka-addr, with the event-store API, /metrics and /healthz on
--http-addr.

SIGINT or SIGTERM shut it down cleanly: pending syncs finish and files close, so
the next start needs no recovery scan.`,
		Example: `  cairn serve
  cairn serve --data-dir /var/lib/cairn --kafka-addr 127.0.0.1:19092
  CAIRN_DEFAULT_PARTITIONS=3 cairn serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptContext(cmd.Context())
			defer stop()
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return server.Run(ctx, cfg, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding the log, topic metadata and producer state")
	f.StringVar(&cfg.KafkaAddr, "kafka-addr", cfg.KafkaAddr, "address of the Kafka protocol listener")
	f.StringVar(&cfg.AdvertisedKafkaAddr, "advertised-kafka-addr", "", "address given to clients in metadata (default: --kafka-addr)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address serving the event-store API (gRPC, gRPC-Web and JSON), /metrics and /healthz (empty disables it)")
	f.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on first metadata request or produce")
	f.Int32Var(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics")
	f.Int32Var(&cfg.RequestBytesMax, "request-bytes-max", cfg.RequestBytesMax, "largest Kafka request frame accepted; larger ones close the connection")
	f.IntVar(&cfg.ConnectionsMax, "connections-max", cfg.ConnectionsMax, "most Kafka connections open at once; more are closed on accept")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close a Kafka connection that sends nothing for this long")
	f.IntVar(&cfg.DecompressedBatchBytesMax, "decompressed-batch-bytes-max", cfg.DecompressedBatchBytesMax, "largest produced batch after decompression; larger ones are refused (INVALID_RECORD)")
	f.DurationVar(&cfg.ProducerIDExpiration, "producer-id-expiration", cfg.ProducerIDExpiration, "forget an idempotent producer idle this long on a partition (Kafka's producer.id.expiration.ms)")
	f.IntVar(&cfg.InflightRequestsMax, "inflight-requests-max", cfg.InflightRequestsMax, "most requests per connection read but not yet answered")
	return cmd
}
