package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairnlog/cairn/internal/esload"
)

// esBenchFlags are the flags of the event-store bench subcommands.
type esBenchFlags struct {
	server     string
	topic      string
	eventBytes int
	duration   time.Duration
	json       bool
	progress   bool
}

func (f *esBenchFlags) register(flags *pflag.FlagSet, topic string) {
	flags.StringVar(&f.server, "server", "http://127.0.0.1:8080", "the event-store API: cairn serve's --http-addr as a URL")
	flags.StringVar(&f.topic, "topic", topic, "event-store topic to use (created with cleanup.policy=stream when missing)")
	flags.IntVar(&f.eventBytes, "event-bytes", 100, "size of each event's data")
	flags.DurationVar(&f.duration, "duration", 20*time.Second, "how long the measured part runs")
	flags.BoolVar(&f.json, "json", false, "print the summary as one JSON object")
	flags.BoolVar(&f.progress, "progress", false, "report progress on stderr every second even when it is not a terminal")
}

func (f *esBenchFlags) progressOut(cmd *cobra.Command) io.Writer {
	if f.progress || isTerminal(cmd.ErrOrStderr()) {
		return cmd.ErrOrStderr()
	}
	return nil
}

func (f *esBenchFlags) print(cmd *cobra.Command, s esload.Summary) error {
	if f.json {
		return s.WriteJSON(cmd.OutOrStdout())
	}
	return s.WriteText(cmd.OutOrStdout())
}

func newBenchAppendCommand() *cobra.Command {
	var flags esBenchFlags
	var writers int
	var appends int64
	cmd := &cobra.Command{
		Use:   "append",
		Short: "Measure event-store appends: one event each, exact expected revision",
		Long: `Run --writers concurrent writers, each appending one event at a time to its own
stream with the exact expected revision it last wrote, through the
event-store API, for --duration (or --appends in all). The summary gives
appends per second and the latency of each append, which answers only once
the event is durable.`,
		Example: `  cairn bench append --writers 32 --duration 20s
  cairn bench append --server http://10.0.0.5:8080 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptContext(cmd.Context())
			defer stop()
			s, err := esload.RunAppend(ctx, esload.Client(flags.server), esload.AppendConfig{Topic: flags.topic, Writers: writers,
				EventBytes: flags.eventBytes, Duration: flags.duration, Appends: appends}, flags.progressOut(cmd))
			if s.Workload == "" {
				return err
			}
			if perr := flags.print(cmd, s); perr != nil {
				return perr
			}
			return err
		},
	}
	flags.register(cmd.Flags(), "bench-append")
	cmd.Flags().IntVar(&writers, "writers", 32, "concurrent writers, each on its own stream")
	cmd.Flags().Int64Var(&appends, "appends", 0, "stop after this many appends in all; 0 is no bound")
	return cmd
}

func newBenchReadStreamCommand() *cobra.Command {
	var flags esBenchFlags
	var events, others int
	var reads int64
	cmd := &cobra.Command{
		Use:   "read-stream",
		Short: "Measure reading one stream among many other events",
		Long: `Fill a topic (one partition) with --other-events events of other streams and,
spread evenly among them, --events events of one stream; then read that
whole stream again and again for --duration. The summary gives the latency
of one complete read: with the stream index it follows the stream's length,
not the partition's.`,
		Example: `  cairn bench read-stream --events 1000 --other-events 1000000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptContext(cmd.Context())
			defer stop()
			topic := flags.topic
			if !cmd.Flags().Changed("topic") {
				// A fresh topic each run, so the stream read is the one this run wrote.
				topic = fmt.Sprintf("%s-%d", topic, time.Now().UnixNano())
			}
			s, err := esload.RunReadStream(ctx, esload.Client(flags.server), esload.ReadConfig{Topic: topic, StreamEvents: events,
				OtherEvents: others, EventBytes: flags.eventBytes, Duration: flags.duration, Reads: reads}, flags.progressOut(cmd))
			if err != nil {
				return err
			}
			return flags.print(cmd, s)
		},
	}
	flags.register(cmd.Flags(), "bench-read")
	cmd.Flags().IntVar(&events, "events", 1000, "events of the stream read")
	cmd.Flags().IntVar(&others, "other-events", 1_000_000, "events of other streams in the same partition")
	cmd.Flags().Int64Var(&reads, "reads", 0, "stop after this many complete reads; 0 is no bound")
	return cmd
}
