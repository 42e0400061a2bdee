package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairnlog/cairn/client"
)

// streamFlags are the flags every stream subcommand shares.
type streamFlags struct {
	server  string
	timeout time.Duration
}

func (f *streamFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.server, "server", "http://127.0.0.1:8080", "the event-store API: cairn serve's --http-addr as a URL")
	flags.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long one call may take (subscribe runs until stopped)")
}

func (f *streamFlags) client() (*client.Client, error) {
	c, err := client.New(f.server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", f.server, err)
	}
	return c, nil
}

func newStreamCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Append to, read, subscribe to and manage event-store streams",
		Long: `Work with the event store: streams are all records with one key in a topic
with cleanup.policy=stream (appending to a missing topic creates one). These
commands use the event-store API on cairn serve's HTTP address (--server,
default http://127.0.0.1:8080, or CAIRN_SERVER). A stream is named
TOPIC/STREAM; the stream name may itself contain slashes.`,
		Example: `  cairn stream append orders/order-1 --type OrderPlaced --data '{"sku":"tea"}' --expected-revision no-stream
  cairn stream read orders/order-1 --json
  cairn stream subscribe orders --type-prefix Order
  cairn stream metadata orders/order-1 --max-count 100
  cairn stream delete orders/order-1`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newStreamAppendCommand(), newStreamReadCommand(), newStreamSubscribeCommand(),
		newStreamMetadataCommand(), newStreamDeleteCommand())
	return cmd
}

// splitStream splits TOPIC/STREAM at the first slash.
func splitStream(arg string) (topic, stream string, err error) {
	topic, stream, ok := strings.Cut(arg, "/")
	if !ok || topic == "" || stream == "" {
		return "", "", fmt.Errorf("%q: want TOPIC/STREAM", arg)
	}
	return topic, stream, nil
}

// parseExpected reads --expected-revision.
func parseExpected(s string) (client.Expected, error) {
	switch s {
	case "", "any":
		return client.Any, nil
	case "no-stream":
		return client.NoStream, nil
	case "exists":
		return client.StreamExists, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return client.Any, fmt.Errorf("--expected-revision %q: want any, no-stream, exists or a revision number", s)
	}
	return client.Exact(n), nil
}

// explain turns the client's errors into what a person at a terminal needs.
func explain(err error) error {
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		if wrong.Actual < 0 {
			return fmt.Errorf("wrong expected revision for %s/%s: expected %s, but the stream has no events", wrong.Topic, wrong.Stream, wrong.Expected)
		}
		return fmt.Errorf("wrong expected revision for %s/%s: expected %s, but its revision is %d", wrong.Topic, wrong.Stream, wrong.Expected, wrong.Actual)
	}
	return err
}

func newStreamAppendCommand() *cobra.Command {
	var flags streamFlags
	var typ, data, id, contentType, expected string
	var metadata []string
	cmd := &cobra.Command{
		Use:   "append TOPIC/STREAM",
		Short: "Append an event to a stream",
		Long: `Append one event and print the stream's new revision. --data is the event's
data: JSON or text as given, @FILE for a file's contents, or - for stdin.
With --expected-revision the append happens only if the stream is in that
state (any, no-stream, exists, or the revision of its last event); otherwise
the command fails and says the stream's actual revision. Re-running with the
same --id is a retry: it prints the original revision and writes nothing.`,
		Example: `  cairn stream append orders/order-1 --type OrderPlaced --data '{"sku":"tea","qty":2}'
  cairn stream append orders/order-1 --type OrderPaid --data @payment.json --expected-revision 0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			exp, err := parseExpected(expected)
			if err != nil {
				return err
			}
			body, err := readData(data, cmd.InOrStdin())
			if err != nil {
				return err
			}
			md := map[string]string{}
			for _, kv := range metadata {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--metadata %q: want NAME=VALUE", kv)
				}
				md[k] = v
			}
			if contentType == "" {
				contentType = "application/octet-stream"
				if json.Valid(body) {
					contentType = "application/json"
				}
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
			defer cancel()
			res, err := c.Append(ctx, topic, stream, exp, client.EventData{ID: id, Type: typ, Data: body, ContentType: contentType, Metadata: md})
			if err != nil {
				return explain(err)
			}
			if res.Duplicate {
				fmt.Fprintf(cmd.ErrOrStderr(), "already appended: event %s is at revision %d\n", id, res.LastRevision)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.LastRevision)
			return err
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&typ, "type", "", "event type, e.g. OrderPlaced (required)")
	cmd.Flags().StringVar(&data, "data", "", "event data: JSON or text, @FILE, or - for stdin")
	cmd.Flags().StringVar(&id, "id", "", "event id (a UUID); default a random one")
	cmd.Flags().StringVar(&contentType, "content-type", "", "content type of the data; default application/json when it parses as JSON")
	cmd.Flags().StringArrayVar(&metadata, "metadata", nil, "NAME=VALUE metadata, stored as a record header (repeatable)")
	cmd.Flags().StringVar(&expected, "expected-revision", "any", "any, no-stream, exists, or the revision of the stream's last event")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

// readData resolves --data.
func readData(data string, stdin io.Reader) ([]byte, error) {
	switch {
	case data == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read data from stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(data, "@"):
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		return b, nil
	}
	return []byte(data), nil
}

// eventPrinter writes events as text lines or JSON lines.
type eventPrinter struct {
	out  io.Writer
	json bool
}

// eventJSON is the --json line of an event.
type eventJSON struct {
	Topic       string            `json:"topic"`
	Stream      string            `json:"stream"`
	Revision    uint64            `json:"revision"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Time        time.Time         `json:"time"`
	ContentType string            `json:"content_type,omitempty"`
	Data        any               `json:"data"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func (p eventPrinter) print(ev client.RecordedEvent) error {
	if p.json {
		var data any = string(ev.Data)
		if (ev.ContentType == "" || strings.Contains(ev.ContentType, "json")) && json.Valid(ev.Data) {
			data = json.RawMessage(ev.Data)
		}
		line, err := json.Marshal(eventJSON{Topic: ev.Topic, Stream: ev.Stream, Revision: ev.Revision, Partition: ev.Position.Partition,
			Offset: ev.Position.Offset, ID: ev.ID, Type: ev.Type, Time: ev.Time.UTC(), ContentType: ev.ContentType, Data: data, Metadata: ev.Metadata})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.out, "%s\n", line)
		return err
	}
	_, err := fmt.Fprintf(p.out, "%s\t%d\t%s\t%s\t%s\t%s\n", ev.Stream, ev.Revision, ev.Type, ev.ID,
		ev.Time.UTC().Format(time.RFC3339Nano), strings.ReplaceAll(string(ev.Data), "\n", `\n`))
	return err
}

func newStreamReadCommand() *cobra.Command {
	var flags streamFlags
	var from uint64
	var backwards, asJSON bool
	var maxEvents int64
	cmd := &cobra.Command{
		Use:   "read TOPIC/STREAM",
		Short: "Read a stream's events",
		Long: `Print a stream's events, oldest first (or newest first with --backwards),
one per line: stream, revision, type, id, time and data separated by tabs, or
with --json one JSON object per line (revision, id, type, time, data — as JSON
when it is JSON —, metadata, partition, offset).`,
		Example: `  cairn stream read orders/order-1
  cairn stream read orders/order-1 --backwards --max 1 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
			defer cancel()
			var opts []client.ReadOption
			if cmd.Flags().Changed("from") {
				opts = append(opts, client.FromRevision(from))
			}
			if backwards {
				opts = append(opts, client.Backwards())
			}
			printer := eventPrinter{out: cmd.OutOrStdout(), json: asJSON}
			printed := int64(0)
			for ev, err := range c.ReadStreamAll(ctx, topic, stream, opts...) {
				if err != nil {
					return explain(err)
				}
				if maxEvents > 0 && printed >= maxEvents {
					break
				}
				if err := printer.print(ev); err != nil {
					return err
				}
				printed++
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Uint64Var(&from, "from", 0, "first revision to read (default: the start, or the end with --backwards)")
	cmd.Flags().BoolVar(&backwards, "backwards", false, "newest first")
	cmd.Flags().Int64Var(&maxEvents, "max", 0, "print at most this many events; 0 is all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event")
	return cmd
}

// parsePositions reads P:O,P:O.
func parsePositions(s string) ([]client.Position, error) {
	var out []client.Position
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(part, ":")
		partition, err1 := strconv.ParseInt(p, 10, 32)
		offset, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || partition < 0 || offset < 0 {
			return nil, fmt.Errorf("--from %q: want start, end, a revision (for a stream) or PARTITION:OFFSET,... (for a topic)", s)
		}
		out = append(out, client.Position{Partition: int32(partition), Offset: offset})
	}
	return out, nil
}

func newStreamSubscribeCommand() *cobra.Command {
	var flags streamFlags
	var from, typePrefix, typeRegex, streamPrefix string
	var asJSON bool
	var maxEvents int64
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC[/STREAM]",
		Short: "Print a stream's or topic's events as they arrive",
		Long: `Catch up with a stream or a whole topic, then print new events as they
become durable, until Ctrl-C, SIGTERM or --max events. A note goes to stderr
when the subscription has caught up. --from is start (the default), end, a
revision for a stream, or PARTITION:OFFSET,... (next offsets) for a topic.`,
		Example: `  cairn stream subscribe orders/order-1 --from 3
  cairn stream subscribe orders --from end --type-prefix Order --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, _ := strings.Cut(args[0], "/")
			var opts []client.ReadOption
			switch {
			case from == "" || from == "start":
			case from == "end":
				opts = append(opts, client.FromEnd())
			case stream != "":
				rev, err := strconv.ParseUint(from, 10, 63)
				if err != nil {
					return fmt.Errorf("--from %q: want start, end or a revision", from)
				}
				opts = append(opts, client.FromRevision(rev))
			default:
				positions, err := parsePositions(from)
				if err != nil {
					return err
				}
				opts = append(opts, client.FromPositions(positions...))
			}
			if typePrefix != "" || typeRegex != "" || streamPrefix != "" {
				opts = append(opts, client.WithFilter(client.Filter{EventTypePrefix: typePrefix, EventTypeRegex: typeRegex, StreamPrefix: streamPrefix}))
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sub, err := c.Subscribe(ctx, topic, stream, opts...)
			if err != nil {
				return explain(err)
			}
			defer sub.Close()
			printer := eventPrinter{out: cmd.OutOrStdout(), json: asJSON}
			printed := int64(0)
			for maxEvents <= 0 || printed < maxEvents {
				msg, err := sub.Recv()
				if err != nil {
					if ctx.Err() != nil {
						return nil // stopped by a signal
					}
					return explain(err)
				}
				switch msg.Kind {
				case client.MessageEvent:
					if err := printer.print(msg.Event); err != nil {
						return err
					}
					printed++
				case client.MessageCaughtUp:
					fmt.Fprintf(cmd.ErrOrStderr(), "caught up with %s after %d events; waiting for new ones\n", args[0], printed)
				}
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "start", "start, end, a revision (stream) or PARTITION:OFFSET,... (topic)")
	cmd.Flags().StringVar(&typePrefix, "type-prefix", "", "only events whose type starts with this")
	cmd.Flags().StringVar(&typeRegex, "type-regex", "", "only events whose type matches this regular expression")
	cmd.Flags().StringVar(&streamPrefix, "stream-prefix", "", "only events of streams starting with this (topic subscriptions)")
	cmd.Flags().Int64Var(&maxEvents, "max", 0, "exit after this many events; 0 runs until stopped")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event")
	return cmd
}

func newStreamMetadataCommand() *cobra.Command {
	var flags streamFlags
	var maxCount, truncateBefore uint64
	var maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "metadata TOPIC/STREAM",
		Short: "Show or change a stream's metadata",
		Long: `Without flags, print a stream's last revision, deletion state and metadata.
With --max-count, --max-age or --truncate-before, change those bounds (the
others stay as they were; 0 removes --max-count or --max-age) and print the
result. Reads honour the bounds at once; the topic's cleaner reclaims space.`,
		Example: `  cairn stream metadata orders/order-1
  cairn stream metadata orders/order-1 --max-count 100 --max-age 720h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
			defer cancel()
			info, err := c.GetStreamMetadata(ctx, topic, stream)
			if err != nil {
				return explain(err)
			}
			changed := cmd.Flags().Changed
			if changed("max-count") || changed("max-age") || changed("truncate-before") {
				md := info.Metadata
				if changed("max-count") {
					md.MaxCount = nil
					if maxCount > 0 {
						md.MaxCount = &maxCount
					}
				}
				if changed("max-age") {
					md.MaxAge = maxAge
				}
				if changed("truncate-before") {
					md.TruncateBefore = &truncateBefore
				}
				if _, err := c.SetStreamMetadata(ctx, topic, stream, md); err != nil {
					return explain(err)
				}
				if info, err = c.GetStreamMetadata(ctx, topic, stream); err != nil {
					return explain(err)
				}
			}
			return printStreamInfo(cmd.OutOrStdout(), args[0], info)
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Uint64Var(&maxCount, "max-count", 0, "keep only the newest N events; 0 removes the bound")
	cmd.Flags().DurationVar(&maxAge, "max-age", 0, "hide events older than this (e.g. 720h); 0 removes the bound")
	cmd.Flags().Uint64Var(&truncateBefore, "truncate-before", 0, "hide events below this revision")
	return cmd
}

func printStreamInfo(out io.Writer, name string, info client.StreamInfo) error {
	state := "live"
	switch {
	case info.HardDeleted:
		state = "deleted for good"
	case info.SoftDeleted:
		state = "deleted (may be written again)"
	case info.LastRevision < 0:
		state = "no events"
	}
	last := "none"
	if info.LastRevision >= 0 {
		last = strconv.FormatInt(info.LastRevision, 10)
	}
	bound := func(v *uint64) string {
		if v == nil {
			return "none"
		}
		return strconv.FormatUint(*v, 10)
	}
	age := "none"
	if info.Metadata.MaxAge > 0 {
		age = info.Metadata.MaxAge.String()
	}
	_, err := fmt.Fprintf(out, "stream:           %s\nstate:            %s\nlast revision:    %s\nmax count:        %s\nmax age:          %s\ntruncate before:  %s\n",
		name, state, last, bound(info.Metadata.MaxCount), age, bound(info.Metadata.TruncateBefore))
	return err
}

func newStreamDeleteCommand() *cobra.Command {
	var flags streamFlags
	var hard bool
	var expected string
	cmd := &cobra.Command{
		Use:   "delete TOPIC/STREAM",
		Short: "Delete a stream",
		Long: `Delete a stream. A soft delete hides its events; the stream may be written
again, continuing its revisions. --hard deletes it for good: it can never be
read or written again. The topic's cleaner removes the events' records.`,
		Example: `  cairn stream delete orders/order-1
  cairn stream delete users/user-7 --hard --expected-revision 12`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			exp, err := parseExpected(expected)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
			defer cancel()
			mode, how := client.SoftDelete, "deleted"
			if hard {
				mode, how = client.HardDelete, "deleted for good"
			}
			if _, err := c.DeleteStream(ctx, topic, stream, mode, exp); err != nil {
				return explain(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", how, args[0])
			return err
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().BoolVar(&hard, "hard", false, "delete for good: the stream can never be written again")
	cmd.Flags().StringVar(&expected, "expected-revision", "any", "any, no-stream, exists, or the revision of the stream's last event")
	return cmd
}
