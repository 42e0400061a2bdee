package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// errGroupActive refuses a reset while consumers would overwrite it.
var errGroupActive = errors.New("group has live members; stop its consumers first")

type resetTarget struct {
	earliest, latest bool
	offset           int64
	datetime         string
}

func newGroupResetOffsetsCommand(connection *clientFlags) *cobra.Command {
	var target resetTarget
	var topic string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T (--to-earliest|--to-latest|--to-offset N|--to-datetime TIME)",
		Short: "Move a group's committed offsets for a topic",
		Long: `Set the committed offset of every partition of a topic for a consumer group:
to the log start (--to-earliest), the log end (--to-latest), an offset clamped
to each partition's range (--to-offset), or the first record at or after a
time (--to-datetime, RFC 3339, e.g. 2026-01-02T15:04:05Z; the log end where no
record is that new). As in Kafka, a group with live members is refused: its
consumers would overwrite the reset. --dry-run prints the plan and commits
nothing. Prints one line per partition: topic, partition, current and new
offset.`,
		Example: `  cairn group reset-offsets billing --topic orders --to-earliest --dry-run
  cairn group reset-offsets billing --topic orders --to-datetime 2026-01-02T00:00:00Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target.earliest, _ = cmd.Flags().GetBool("to-earliest")
			target.latest, _ = cmd.Flags().GetBool("to-latest")
			hasOffset := cmd.Flags().Changed("to-offset")
			chosen := 0
			for _, set := range []bool{target.earliest, target.latest, hasOffset, target.datetime != ""} {
				if set {
					chosen++
				}
			}
			if chosen != 1 {
				return errors.New("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
			}
			if !hasOffset {
				target.offset = -1
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				return resetOffsets(ctx, cmd.OutOrStdout(), admin, args[0], topic, target, dryRun)
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic whose offsets to reset (required)")
	cmd.Flags().Bool("to-earliest", false, "reset to each partition's log start offset")
	cmd.Flags().Bool("to-latest", false, "reset to each partition's log end offset")
	cmd.Flags().Int64Var(&target.offset, "to-offset", -1, "reset to this offset, clamped to each partition's range")
	cmd.Flags().StringVar(&target.datetime, "to-datetime", "", "reset to the first record at or after this RFC 3339 time")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the new offsets without committing them")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func resetOffsets(ctx context.Context, out io.Writer, admin *kadm.Client, group, topic string, target resetTarget, dryRun bool) error {
	described, err := admin.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %q: %w", group, err)
	}
	if d := described[group]; d.Err != nil {
		return fmt.Errorf("describe group %q: %w", group, d.Err)
	} else if len(d.Members) > 0 {
		return fmt.Errorf("reset offsets of group %q (state %s, %d members): %w", group, d.State, len(d.Members), errGroupActive)
	}
	planned, err := plannedOffsets(ctx, admin, topic, target)
	if err != nil {
		return err
	}
	current, err := admin.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	if !dryRun {
		committed, err := admin.CommitOffsets(ctx, group, planned)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			return fmt.Errorf("commit offsets of group %q: %w", group, err)
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITION\tCURRENT\tNEW")
	for _, o := range planned.Sorted() {
		was := "-"
		if c, ok := current.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			was = fmt.Sprint(c.At)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", o.Topic, o.Partition, was, o.At)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// The table reads the same either way; this line says what happened.
	if dryRun {
		_, err = fmt.Fprintln(out, "dry run: nothing committed; run again without --dry-run to apply")
	} else {
		_, err = fmt.Fprintf(out, "committed %d offsets for group %s\n", len(planned.Sorted()), group)
	}
	return err
}

// plannedOffsets computes the new offset of every partition of topic.
func plannedOffsets(ctx context.Context, admin *kadm.Client, topic string, target resetTarget) (kadm.Offsets, error) {
	starts, err := admin.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %q: %w", topic, err)
	}
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %q: %w", topic, err)
	}
	var byTime kadm.ListedOffsets
	if target.datetime != "" {
		at, err := time.Parse(time.RFC3339, target.datetime)
		if err != nil {
			return nil, fmt.Errorf("--to-datetime %q: %w", target.datetime, err)
		}
		if byTime, err = admin.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic); err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list offsets of %q after %s: %w", topic, target.datetime, err)
		}
	}
	planned := kadm.Offsets{}
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		at := end.Offset
		switch {
		case target.earliest:
			at = start.Offset
		case target.offset >= 0:
			at = min(max(target.offset, start.Offset), end.Offset)
		case target.datetime != "":
			if t, ok := byTime.Lookup(end.Topic, end.Partition); ok && t.Offset >= 0 {
				at = t.Offset
			}
		}
		planned.AddOffset(end.Topic, end.Partition, at, -1)
	})
	if len(planned) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", topic)
	}
	return planned, nil
}
