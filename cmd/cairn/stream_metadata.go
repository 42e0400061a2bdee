package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

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
result. Reads honour the bounds at once; the topic's cleaner reclaims space.
Bounds may be set before a stream's first event; setting them on a missing
topic creates it as an event store.`,
		Example: `  cairn stream metadata orders/order-1
  cairn stream metadata orders/order-1 --max-count 100 --max-age 720h
  cairn stream metadata orders/order-1 --truncate-before 42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			if maxAge < 0 {
				return fmt.Errorf("--max-age %s: want 0 (no bound) or more", maxAge)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := commandContext(cmd, flags.timeout)
			defer cancel()
			changed := cmd.Flags().Changed
			setting := changed("max-count") || changed("max-age") || changed("truncate-before")
			info, err := c.GetStreamMetadata(ctx, topic, stream)
			switch {
			case setting && errors.Is(err, client.ErrTopicNotFound):
				// Nothing to keep: the write creates the topic.
				info = client.StreamInfo{LastRevision: -1}
			case err != nil:
				return stopError(ctx, explain(err))
			}
			if setting {
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
					return stopError(ctx, explain(err))
				}
				// Read back, so what is printed is what the server holds.
				if info, err = c.GetStreamMetadata(ctx, topic, stream); err != nil {
					return stopError(ctx, explain(err))
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
