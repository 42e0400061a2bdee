package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newStreamSubscribeCommand() *cobra.Command {
	var flags streamFlags
	var from, typePrefix, typeRegex, streamPrefix string
	var asJSON bool
	var maxEvents int64
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC[/STREAM]",
		Short: "Print a stream's or topic's events as they arrive",
		Long: `Catch up with a stream or a whole topic, then print new events as they
become durable, in the formats of read, until Ctrl-C, SIGTERM or --max
events. A note goes to stderr when the subscription has caught up, and
another when it stops, saying the --from that continues after the last
event printed. --from is start (the default), end, a revision for a stream,
or PARTITION:OFFSET,... (next offsets) for a topic.`,
		Example: `  cairn stream subscribe orders/order-1 --from 3
  cairn stream subscribe orders --from end --type-prefix Order --json
  cairn stream subscribe orders --from 0:120 --stream-prefix eu/ --max 10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, slash := strings.Cut(args[0], "/")
			if topic == "" || (slash && stream == "") {
				return fmt.Errorf("%q: want TOPIC or TOPIC/STREAM", args[0])
			}
			if maxEvents < 0 {
				return fmt.Errorf("--max %d: want 0 (until stopped) or more", maxEvents)
			}
			opts, err := subscribeFrom(from, stream != "")
			if err != nil {
				return err
			}
			if typePrefix != "" || typeRegex != "" || streamPrefix != "" {
				opts = append(opts, client.WithFilter(client.Filter{EventTypePrefix: typePrefix, EventTypeRegex: typeRegex, StreamPrefix: streamPrefix}))
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := interruptContext(cmd.Context())
			defer stop()
			sub, err := c.Subscribe(ctx, topic, stream, opts...)
			if err != nil {
				return explain(err)
			}
			defer sub.Close()
			printer := eventPrinter{out: cmd.OutOrStdout(), json: asJSON}
			printed := int64(0)
			for maxEvents == 0 || printed < maxEvents {
				msg, err := sub.Recv()
				if err != nil {
					if ctx.Err() != nil {
						break // stopped by a signal or the caller
					}
					if errors.Is(err, io.EOF) {
						err = errors.New("the server ended the subscription")
					}
					noteResume(cmd, sub, stream, from, printed)
					return explain(err)
				}
				switch msg.Kind {
				case client.MessageEvent:
					if err := printer.print(msg.Event); err != nil {
						return err
					}
					printed++
				case client.MessageCaughtUp:
					fmt.Fprintf(cmd.ErrOrStderr(), "caught up with %s after %s; waiting for new ones\n", args[0], eventCount(printed))
				}
			}
			noteResume(cmd, sub, stream, from, printed)
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "start", "start, end, a revision (stream) or PARTITION:OFFSET,... (topic)")
	cmd.Flags().StringVar(&typePrefix, "type-prefix", "", "only events whose type starts with this")
	cmd.Flags().StringVar(&typeRegex, "type-regex", "", "only events whose type matches this regular expression (RE2)")
	cmd.Flags().StringVar(&streamPrefix, "stream-prefix", "", "only events of streams starting with this (topic subscriptions)")
	cmd.Flags().Int64Var(&maxEvents, "max", 0, "exit after this many events; 0 runs until stopped")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event")
	return cmd
}

// subscribeFrom turns --from into read options.
func subscribeFrom(from string, isStream bool) ([]client.ReadOption, error) {
	switch {
	case from == "" || from == "start":
		return nil, nil
	case from == "end":
		return []client.ReadOption{client.FromEnd()}, nil
	case isStream:
		rev, err := strconv.ParseUint(from, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("--from %q: want start, end or a revision", from)
		}
		return []client.ReadOption{client.FromRevision(rev)}, nil
	}
	positions, err := parsePositions(from)
	if err != nil {
		return nil, err
	}
	return []client.ReadOption{client.FromPositions(positions...)}, nil
}

// parsePositions reads P:O,P:O.
func parsePositions(s string) ([]client.Position, error) {
	var out []client.Position
	seen := map[int32]bool{}
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(part, ":")
		partition, err1 := strconv.ParseInt(p, 10, 32)
		offset, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || partition < 0 || offset < 0 {
			return nil, fmt.Errorf("--from %q: want start, end, a revision (for a stream) or PARTITION:OFFSET,... (for a topic)", s)
		}
		if seen[int32(partition)] {
			return nil, fmt.Errorf("--from %q: partition %d given twice", s, partition)
		}
		seen[int32(partition)] = true
		out = append(out, client.Position{Partition: int32(partition), Offset: offset})
	}
	return out, nil
}

// formatPositions writes positions in --from's syntax.
func formatPositions(positions []client.Position) string {
	parts := make([]string, len(positions))
	for i, p := range positions {
		parts[i] = fmt.Sprintf("%d:%d", p.Partition, p.Offset)
	}
	return strings.Join(parts, ",")
}

// noteResume tells on stderr how to continue where the subscription
// stopped. A topic subscription knows the positions only of partitions it
// started at or delivered from; one started at the end cannot say where the
// others stand, so it gives no advice rather than wrong advice.
func noteResume(cmd *cobra.Command, sub *client.Subscription, stream, from string, printed int64) {
	resume := ""
	if stream != "" {
		if next, ok := sub.NextRevision(); ok {
			resume = strconv.FormatUint(next, 10)
		}
	} else if from != "end" {
		resume = formatPositions(sub.Positions())
	}
	if resume == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "stopped after %s\n", eventCount(printed))
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "stopped after %s; continue with --from %s\n", eventCount(printed), resume)
}

func eventCount(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return strconv.FormatInt(n, 10) + " events"
}
