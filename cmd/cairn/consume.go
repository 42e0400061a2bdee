package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
)

type consumeOptions struct {
	connection clientFlags
	from       string
	partitions []int32
	recordsMax int64
	untilEnd   bool
	format     string
	json       bool
}

func newConsumeCommand() *cobra.Command {
	var options consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records from a topic",
		Long: `Print the records of TOPIC, reading every partition (or the --partition ones)
directly, without a consumer group, so nothing is committed.

--from picks where each partition starts: "end" (the default) waits for new
records, "beginning" starts at the log start, an offset starts there in every
partition (bounded to the log: before the log start means the log start, past
the end means the end), and an RFC 3339 time starts at the first record
stamped at or after it.

It runs until Ctrl-C, until --max records are printed, or with --until-end until
every partition has printed the records below the high watermark it had when
the command started; records appended after that are not printed.

--format is a Go text/template over .Topic .Partition .Offset .Key .Value
.Timestamp (a time.Time) and .Headers (a list of .Key .Value, in order); {{.Header
"name"}} gives the first header of that name. \n, \t and \\ in the format are a
newline, a tab and a backslash. Null keys and values render as empty.

--json prints one object per line: topic, partition, offset, timestamp
(RFC 3339 in UTC, nanoseconds), key, value and headers ([{key, value}]). A null
key or value is null. Bytes that are not valid UTF-8 are shown with U+FFFD in
key/value and exactly, in standard base64, in key_base64/value_base64 (and
value_base64 in a header), present only then.`,
		Example: `  cairn consume orders
  cairn consume orders --from beginning --until-end --json
  cairn consume orders --from 2026-01-02T15:00:00Z --max 10
  cairn consume orders --partition 0 --partition 2 --from 100 \
      --format '{{.Partition}}:{{.Offset}}\t{{.Key}}={{.Value}}\n'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsume(cmd, args[0], &options)
		},
	}
	options.connection.register(cmd.Flags(), "how long to wait for the partition lookups before consuming starts")
	f := cmd.Flags()
	f.StringVar(&options.from, "from", "end", "where to start: beginning, end, an offset, or an RFC 3339 time")
	f.Int32SliceVar(&options.partitions, "partition", nil, "partition to read (repeatable or comma-separated; default all)")
	f.Int64Var(&options.recordsMax, "max", 0, "stop after printing this many records (0: no limit)")
	f.BoolVar(&options.untilEnd, "until-end", false, "stop once every partition reached its high watermark from the start")
	f.StringVar(&options.format, "format", "", `Go template for each record (default "`+cli.DefaultFormat+`": the value and a newline)`)
	f.BoolVar(&options.json, "json", false, "print each record as a JSON object on one line (overrides --format)")
	return cmd
}

// recordWriter prints one record in the chosen output format.
type recordWriter func(io.Writer, *kgo.Record) error

func (o *consumeOptions) recordWriter() (recordWriter, error) {
	if o.json {
		return cli.WriteJSONLine, nil
	}
	format := o.format
	if format == "" {
		format = cli.DefaultFormat
	}
	formatter, err := cli.NewFormatter(format)
	if err != nil {
		return nil, err
	}
	return formatter.Write, nil
}

func runConsume(cmd *cobra.Command, topic string, options *consumeOptions) error {
	start, err := cli.ParseStart(options.from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if options.recordsMax < 0 {
		return fmt.Errorf("--max %d: must be zero or more", options.recordsMax)
	}
	write, err := options.recordWriter()
	if err != nil {
		return err
	}
	ctx, stop := interruptContext(cmd.Context())
	defer stop()

	plan, err := planConsume(ctx, &options.connection, topic, start, options.partitions)
	if err != nil {
		if ctx.Err() != nil && cmd.Context().Err() == nil {
			return nil // interrupted before the first record
		}
		return err
	}
	if options.untilEnd {
		if plan.tracker.Done() {
			return nil
		}
		plan.dropFinished()
	}
	client, err := options.connection.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: plan.offsets}),
		// Control records (transaction markers) are never printed, but
		// --until-end must see them: one may hold a partition's last
		// offset below the high watermark.
		kgo.KeepControlRecords(),
		// A partition the broker cannot read answers KAFKA_STORAGE_ERROR,
		// which the client would retry forever: fetchError ends on it.
		kgo.KeepRetryableFetchErrors())
	if err != nil {
		return err
	}
	defer client.Close()
	out := bufio.NewWriter(cmd.OutOrStdout())
	loop := consumeLoop{
		client:     client,
		topic:      topic,
		partitions: slices.Sorted(maps.Keys(plan.offsets)),
		paused:     make(map[int32]bool),
		out:        out,
		write:      write,
		options:    options,
		tracker:    plan.tracker,
	}
	err = loop.run(ctx, cmd.ErrOrStderr())
	if flushErr := out.Flush(); err == nil && flushErr != nil {
		err = fmt.Errorf("write output: %w", flushErr)
	}
	if err != nil && ctx.Err() != nil && cmd.Context().Err() == nil {
		return nil // Ctrl-C is the ordinary way to stop
	}
	return err
}

// consumePlan is where each partition starts and, for --until-end, where it
// ends.
type consumePlan struct {
	offsets map[int32]kgo.Offset
	tracker *cli.EndTracker
}

// dropFinished removes partitions with nothing to deliver before their end.
func (p *consumePlan) dropFinished() {
	pending := p.tracker.Pending()
	for partition := range p.offsets {
		if !slices.Contains(pending, partition) {
			delete(p.offsets, partition)
		}
	}
}

// planConsume asks the cluster for each partition's bounds once, before
// consuming, so that --until-end has a fixed end and an exact --from offset
// can be bounded to the log.
func planConsume(ctx context.Context, connection *clientFlags, topic string, start cli.Start, selected []int32) (consumePlan, error) {
	admin, client, err := connection.newAdmin()
	if err != nil {
		return consumePlan{}, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, connection.timeout)
	defer cancel()

	bounds, err := partitionBounds(ctx, admin, topic, start)
	if err != nil {
		return consumePlan{}, err
	}
	if len(selected) == 0 {
		for partition := range bounds {
			selected = append(selected, partition)
		}
	}
	plan := consumePlan{offsets: make(map[int32]kgo.Offset, len(selected)), tracker: cli.NewEndTracker()}
	for _, partition := range selected {
		partitionBounds, found := bounds[partition]
		if !found {
			return consumePlan{}, fmt.Errorf("topic %q has no partition %d (it has %d)", topic, partition, len(bounds))
		}
		first := start.FirstOffset(partitionBounds)
		plan.offsets[partition] = start.KgoOffset(first)
		plan.tracker.Track(partition, first, partitionBounds.HighWatermark)
	}
	return plan, nil
}

// partitionBounds lists the log start offset, high watermark and, for a start
// time, the offset of that time in every partition of topic.
func partitionBounds(ctx context.Context, admin *kadm.Client, topic string, start cli.Start) (map[int32]cli.PartitionBounds, error) {
	starts, err := listOffsets(ctx, "start offsets", topic, admin.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	ends, err := listOffsets(ctx, "end offsets", topic, admin.ListEndOffsets)
	if err != nil {
		return nil, err
	}
	var times map[int32]kadm.ListedOffset
	if start.Kind == cli.StartTime {
		byTime := func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
			return admin.ListOffsetsAfterMilli(ctx, start.Time.UnixMilli(), topics...)
		}
		if times, err = listOffsets(ctx, "offsets after "+start.Time.String(), topic, byTime); err != nil {
			return nil, err
		}
	}
	bounds := make(map[int32]cli.PartitionBounds, len(ends))
	for partition, end := range ends {
		partitionBounds := cli.PartitionBounds{
			LogStartOffset: starts[partition].Offset,
			HighWatermark:  end.Offset,
			TimeOffset:     end.Offset,
		}
		if listed, found := times[partition]; found && listed.Offset >= 0 {
			partitionBounds.TimeOffset = listed.Offset
		}
		bounds[partition] = partitionBounds
	}
	return bounds, nil
}

func listOffsets(ctx context.Context, what, topic string,
	list func(context.Context, ...string) (kadm.ListedOffsets, error),
) (map[int32]kadm.ListedOffset, error) {
	listed, err := list(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list %s of topic %q: %w", what, topic, err)
	}
	if len(listed[topic]) == 0 {
		return nil, fmt.Errorf("list %s of topic %q: no partitions", what, topic)
	}
	return listed[topic], nil
}

// consumeLoop polls and prints until a stop condition holds.
type consumeLoop struct {
	client     *kgo.Client
	topic      string
	partitions []int32        // the partitions consumed
	paused     map[int32]bool // partitions whose fetching was paused
	out        *bufio.Writer
	write      recordWriter
	options    *consumeOptions
	tracker    *cli.EndTracker
	printed    int64
}

func (l *consumeLoop) run(ctx context.Context, stderr io.Writer) error {
	for !l.finished() {
		pollMax := -1
		if l.options.recordsMax > 0 {
			pollMax = int(min(l.options.recordsMax-l.printed, 1<<20))
		}
		fetches := l.client.PollRecords(ctx, pollMax)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchError(fetches, stderr); err != nil {
			return err
		}
		for iter := fetches.RecordIter(); !iter.Done() && !l.finished(); {
			if err := l.print(iter.Next()); err != nil {
				return err
			}
		}
		if l.options.untilEnd {
			l.pauseFinished()
		}
		if err := l.out.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

func (l *consumeLoop) finished() bool {
	if l.options.recordsMax > 0 && l.printed >= l.options.recordsMax {
		return true
	}
	return l.options.untilEnd && l.tracker.Done()
}

func (l *consumeLoop) print(record *kgo.Record) error {
	if l.options.untilEnd && !l.tracker.Accept(record.Partition, record.Offset) {
		return nil
	}
	if record.Attrs.IsControl() {
		return nil
	}
	if err := l.write(l.out, record); err != nil {
		return err
	}
	l.printed++
	return nil
}

// pauseFinished stops fetching partitions that reached their end, so records
// appended since the start are not fetched only to be skipped.
func (l *consumeLoop) pauseFinished() {
	pending := l.tracker.Pending()
	var done []int32
	for _, partition := range l.partitions {
		if !l.paused[partition] && !slices.Contains(pending, partition) {
			l.paused[partition] = true
			done = append(done, partition)
		}
	}
	if len(done) > 0 {
		l.client.PauseFetchPartitions(map[string][]int32{l.topic: done})
	}
}

// fetchError returns the first fetch error that ends consumption. Data loss
// reported by the client is printed and consumption goes on from where the
// client resumed, as the log itself now stands. KAFKA_STORAGE_ERROR (the
// broker cannot read the partition) ends it, as does UNKNOWN_TOPIC_ID; other
// retryable errors (a leader moving, an epoch to re-validate) are left to
// the client to retry.
func fetchError(fetches kgo.Fetches, stderr io.Writer) error {
	for _, fetchErr := range fetches.Errors() {
		var dataLoss *kgo.ErrDataLoss
		if errors.As(fetchErr.Err, &dataLoss) {
			fmt.Fprintf(stderr, "warning: %v\n", dataLoss)
			continue
		}
		if errors.Is(fetchErr.Err, kerr.KafkaStorageError) {
			return fmt.Errorf("consume topic %q partition %d: the broker cannot read it (its log says why): %w",
				fetchErr.Topic, fetchErr.Partition, fetchErr.Err)
		}
		// UNKNOWN_TOPIC_ID is retryable but means the topic was deleted
		// under the consumer: the client hands it over once sure of it.
		if kerr.IsRetriable(fetchErr.Err) && !errors.Is(fetchErr.Err, kerr.UnknownTopicID) {
			continue
		}
		return fmt.Errorf("consume topic %q partition %d: %w", fetchErr.Topic, fetchErr.Partition, fetchErr.Err)
	}
	return nil
}
