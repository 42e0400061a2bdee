package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
)

const (
	// progressInterval is how often produce reports progress.
	progressInterval = time.Second
	// failuresShownMax bounds the per-record error lines, so a broker that
	// is down does not bury the summary under one line per record.
	failuresShownMax = 20
)

type produceOptions struct {
	connection    clientFlags
	file          string
	keySeparator  string
	acks          string
	compression   string
	headers       []string
	partition     int32
	progress      bool
	batchBytesMax int32
}

func newProduceCommand() *cobra.Command {
	var options produceOptions
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write lines from stdin or a file as records",
		Long: `Write each input line as one record to TOPIC, from stdin or --file, and wait
until every record is acknowledged. A trailing carriage return is dropped from
each line; an empty line is a record with an empty value. Lines may be up to
16 MiB long, but a record must also fit in one batch (--batch-bytes-max,
1 MiB by default) and in the topic's max.message.bytes.

With --key-separator, each line is split at the first separator into key and
value; a line without the separator is a record with a null key. Keyed records
go to the partition Kafka's default partitioner picks (murmur2 of the key), so
the same key always lands in the same partition; --partition sends every
record to one partition instead.

--acks all (the default) waits until the records are durable and keeps
idempotent writes, so a retried request is not written twice; --acks 1 and 0
turn idempotence off.

A record the cluster refuses prints its error on stderr, and the command exits 1
after the others are done. Progress (records acknowledged, records per second)
goes to stderr once a second when stderr is a terminal, or always with
--progress; a summary line "produced N records to TOPIC" ends every run.
Ctrl-C stops reading and waits for the records already sent; a second Ctrl-C,
or twice --timeout, ends that wait and reports their outcome as unknown.`,
		Example: `  echo hello | cairn produce greetings
  cairn produce orders --file orders.txt --key-separator : --compression zstd
  cairn produce orders --header source=import --header schema=v2 --acks 1 < lines.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProduce(cmd, args[0], &options)
		},
	}
	options.connection.register(cmd.Flags(), "how long a record may wait for its acknowledgement before it fails")
	f := cmd.Flags()
	f.StringVar(&options.file, "file", "", "read lines from this file instead of stdin")
	f.StringVar(&options.keySeparator, "key-separator", "", "split each line at the first occurrence into key and value")
	f.StringVar(&options.acks, "acks", "all", "acknowledgement to wait for: all, 1 or 0")
	f.StringVar(&options.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	f.StringArrayVar(&options.headers, "header", nil, "header key=value added to every record (repeatable)")
	f.Int32Var(&options.partition, "partition", -1, "write every record to this partition; -1 lets the partitioner choose (by key hash for keyed records)")
	f.BoolVar(&options.progress, "progress", false, "report progress on stderr every second even when it is not a terminal")
	f.Int32Var(&options.batchBytesMax, "batch-bytes-max", 1<<20, "largest record batch, before compression; bounds the largest record")
	return cmd
}

// clientOptions turns the flags into producer options.
func (o *produceOptions) clientOptions(topic string) ([]kgo.Opt, error) {
	acks, idempotent, err := cli.ParseAcks(o.acks)
	if err != nil {
		return nil, fmt.Errorf("--acks: %w", err)
	}
	codec, err := cli.ParseCompression(o.compression)
	if err != nil {
		return nil, fmt.Errorf("--compression: %w", err)
	}
	if o.partition < -1 {
		return nil, fmt.Errorf("--partition %d: must be zero or more", o.partition)
	}
	options := []kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(o.batchBytesMax),
		kgo.RecordDeliveryTimeout(o.connection.timeout),
		// A producer creates the topic it writes to where the cluster
		// allows it, as librdkafka's producers (kcat) do; kgo asks only
		// when told to.
		kgo.AllowAutoTopicCreation(),
		kgo.MaxBufferedRecords(bufferedRecordsMax),
	}
	if !idempotent {
		options = append(options, kgo.DisableIdempotentWrite())
	}
	if o.partition >= 0 {
		options = append(options, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	return options, nil
}

// produceTally counts outcomes; promises update it from the client's
// goroutines while the command reads it.
type produceTally struct {
	sent   atomic.Int64
	acked  atomic.Int64
	failed atomic.Int64
	// invalidTopic is set when the cluster refused the topic's name.
	invalidTopic atomic.Bool
}

// outstanding counts records handed to the client and not yet answered.
func (t *produceTally) outstanding() int64 {
	return t.sent.Load() - t.acked.Load() - t.failed.Load()
}

// bufferedRecordsMax bounds the records handed to the client and not yet
// answered; it is also the client's own bound, so Produce never blocks.
const bufferedRecordsMax = 10_000

// signalAnswer wakes a produce waiting for room, without blocking.
func (p *lineProducer) signalAnswer() {
	select {
	case p.answered <- struct{}{}:
	default:
	}
}

// lineProducer turns input lines into records for one topic.
type lineProducer struct {
	client       *kgo.Client
	topic        string
	keySeparator string
	partition    int32 // -1: the client's partitioner decides
	headers      []kgo.RecordHeader
	tally        produceTally
	answered     chan struct{} // one token: some record was answered
	stderr       io.Writer     // shared with promises: must be safe for concurrent use
}

func runProduce(cmd *cobra.Command, topic string, options *produceOptions) error {
	headers, err := cli.ParseHeaders(options.headers)
	if err != nil {
		return fmt.Errorf("--header: %w", err)
	}
	clientOptions, err := options.clientOptions(topic)
	if err != nil {
		return err
	}
	input, err := openInput(cmd, options.file)
	if err != nil {
		return err
	}
	defer input.Close()
	client, err := options.connection.newClient(clientOptions...)
	if err != nil {
		return err
	}
	defer client.Close()

	producer := &lineProducer{
		client:       client,
		topic:        topic,
		keySeparator: options.keySeparator,
		partition:    options.partition,
		headers:      headers,
		answered:     make(chan struct{}, 1),
		stderr:       &lockedWriter{writer: cmd.ErrOrStderr()},
	}
	stopProgress := func() {}
	if options.progress || isTerminal(cmd.ErrOrStderr()) {
		stopProgress = startProgress(producer.stderr, &producer.tally.acked)
	}
	readErr := producer.produceLines(cmd.Context(), input)

	// Records already handed to the client are waited for even after
	// Ctrl-C; the delivery timeout fails the ones the cluster never takes,
	// and a further interrupt or twice the timeout ends the wait (a dead
	// broker may never answer the ones in flight).
	flushContext, cancel := commandContext(cmd, 2*options.connection.timeout)
	defer cancel()
	flushErr := stopError(flushContext, client.Flush(flushContext))
	stopProgress()
	fmt.Fprintln(producer.stderr, cli.ProduceSummary(producer.tally.acked.Load(), topic))
	if producer.tally.invalidTopic.Load() {
		return explainInvalidTopic(cmd, client, &options.connection, topic)
	}
	return producer.result(readErr, flushErr)
}

// explainInvalidTopic returns the reason the cluster gives for refusing
// topic's name. A Metadata answer carries only the code; a validate-only
// CreateTopics carries the message, the one `topic create` shows.
func explainInvalidTopic(cmd *cobra.Command, client *kgo.Client, connection *clientFlags, topic string) error {
	refused := fmt.Errorf("produce to topic %q: %w", topic, kerr.InvalidTopicException)
	ctx, cancel := commandContext(cmd, connection.timeout)
	defer cancel()
	responses, err := kadm.NewClient(client).ValidateCreateTopics(ctx, 1, -1, nil, topic)
	if err != nil {
		return refused
	}
	response, found := responses[topic]
	if !found || response.Err == nil {
		return refused
	}
	return fmt.Errorf("produce to topic %q: %w", topic, cli.BrokerError(response.Err, response.ErrMessage))
}

func (p *lineProducer) result(readErr, flushErr error) error {
	sent, acked, failed := p.tally.sent.Load(), p.tally.acked.Load(), p.tally.failed.Load()
	switch {
	case readErr != nil:
		return readErr
	case flushErr != nil:
		return fmt.Errorf("gave up waiting for %d of %d records, whose outcome is unknown (they may be in the log): %w",
			sent-acked-failed, sent, flushErr)
	case failed > 0:
		return fmt.Errorf("%d of %d records failed", failed, sent)
	}
	return nil
}

// produceLines hands every input line to the client until the input ends or
// an interrupt arrives. It returns the error that stopped reading, if any.
func (p *lineProducer) produceLines(ctx context.Context, input io.Reader) error {
	interrupted, stop := interruptContext(ctx)
	defer stop()
	lines := readLines(interrupted, input)
	for {
		var line inputLine
		var open bool
		select {
		case line, open = <-lines.items:
		case <-interrupted.Done():
		}
		if interrupted.Err() != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			stop() // a second interrupt ends the wait for them (runProduce)
			fmt.Fprintln(p.stderr, "interrupted: waiting for the records already sent")
			return nil
		}
		if !open {
			return lines.err
		}
		p.produce(ctx, interrupted, line)
	}
}

// produce hands one line to the client once it has room for it. The record
// belongs to the command's context, so an interrupt does not fail records
// already on their way; the wait for room (a broker that stopped answering
// leaves the buffer full) ends on interrupted, and then the line is not
// sent. kgo's own blocking Produce cannot tell those two apart: its context
// also cancels the records it holds.
func (p *lineProducer) produce(ctx, interrupted context.Context, line inputLine) {
	for p.tally.outstanding() >= bufferedRecordsMax {
		select {
		case <-p.answered:
		case <-interrupted.Done():
			return
		}
	}
	key, value := cli.SplitLine(line.data, p.keySeparator)
	record := &kgo.Record{Topic: p.topic, Key: key, Value: value, Headers: p.headers}
	if p.partition >= 0 {
		record.Partition = p.partition
	}
	p.tally.sent.Add(1)
	p.client.Produce(ctx, record, func(_ *kgo.Record, err error) {
		defer p.signalAnswer()
		if err == nil {
			p.tally.acked.Add(1)
			return
		}
		if errors.Is(err, kerr.InvalidTopicException) {
			p.tally.invalidTopic.Store(true)
		}
		if p.tally.failed.Add(1) <= failuresShownMax {
			fmt.Fprintf(p.stderr, "record from line %d: %v\n", line.number, err)
		}
	})
}

type inputLine struct {
	number int64
	data   []byte
}

// lineReader delivers input lines from a goroutine, so an interrupt is seen
// even while a terminal read blocks. err is valid once items is closed.
type lineReader struct {
	items chan inputLine
	err   error
}

func readLines(ctx context.Context, input io.Reader) *lineReader {
	reader := &lineReader{items: make(chan inputLine, 64)}
	go func() {
		defer close(reader.items)
		scanner := cli.NewLineScanner(input)
		var number int64
		for scanner.Scan() {
			number++
			// The scanner reuses its buffer, and the client keeps the
			// record until it is acknowledged. make, not append to nil:
			// an empty line is an empty value, never a null one.
			data := make([]byte, len(scanner.Bytes()))
			copy(data, scanner.Bytes())
			select {
			case reader.items <- inputLine{number: number, data: data}:
			case <-ctx.Done():
				return
			}
		}
		if err := scanner.Err(); err != nil {
			reader.err = fmt.Errorf("read input after line %d: %w", number, err)
		}
	}()
	return reader
}

func openInput(cmd *cobra.Command, path string) (io.ReadCloser, error) {
	if path == "" || path == "-" {
		return io.NopCloser(cmd.InOrStdin()), nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open --file: %w", err)
	}
	return file, nil
}

// startProgress prints a progress line every progressInterval until the
// returned function is called.
func startProgress(out io.Writer, acked *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(progressInterval)
		defer ticker.Stop()
		meter := cli.NewProgressMeter(time.Now())
		for {
			select {
			case now := <-ticker.C:
				fmt.Fprintln(out, meter.Line(acked.Load(), now))
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := file.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serialises writes from promises, the progress reporter and
// the command onto one stream.
type lockedWriter struct {
	mu     sync.Mutex
	writer io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writer.Write(p)
}
