package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/connectors"
)

func newConnectorCreateCommand(flags *connectorFlags) *cobra.Command {
	var d connectors.Definition
	var heartbeat, wait time.Duration
	var outbox connectors.OutboxDefinition
	cmd := &cobra.Command{
		Use:   "create postgres NAME",
		Short: "Create a PostgreSQL connector",
		Long: `Create a PostgreSQL change-data-capture connector; the node leading
__cairn_connectors starts it at once. The database needs wal_level=logical
and a user with the REPLICATION attribute. The connector creates its
publication (FOR ALL TABLES without --tables, which needs a superuser) and
its replication slot, both named cairn_<name> unless given. It first reads
the rows the tables hold (op=r events, read in the slot's snapshot, in
primary-key chunks, resumable) unless --snapshot never, then streams the
changes committed since the slot's creation.
Each table's changes go to the topic <prefix>.<schema>.<table> (prefix:
--topic-prefix, default NAME), logical messages to <prefix>.message,
heartbeats to <prefix>.__heartbeat. With --outbox-table, each row inserted
in that table becomes one event of stream <aggregatetype>/<aggregateid> in
the event-store topic --outbox-topic: event id from the id column, type from
type, data from payload.`,
		Example: `  cairn connector create postgres shop --dsn 'postgres://cdc:secret@db:5432/shop' --tables public.orders,public.outbox
  cairn connector create postgres orders --dsn 'postgres://cdc@db/shop' --tables public.orders,public.outbox --outbox-table public.outbox --outbox-topic shop
  cairn connector create postgres orders --dsn 'postgres://cdc@db/shop' --tables public.orders --wait 5m
  cairn connector create postgres all --dsn 'host=db user=postgres dbname=app' --topic-prefix app --partitions 6`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != connectors.TypePostgres {
				return fmt.Errorf("connector type %q: only %q", args[0], connectors.TypePostgres)
			}
			d.Type, d.Name = args[0], args[1]
			d.HeartbeatIntervalMs = heartbeat.Milliseconds()
			if outbox.Table != "" {
				d.Outbox = &outbox
			} else if outbox.Topic != "" {
				return fmt.Errorf("--outbox-topic needs --outbox-table")
			}
			var info connectors.Info
			if err := flags.call(cmd, "POST", "", d, &info); err != nil {
				return err
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "created connector %s (%s)\n", d.Name, info.State); err != nil || wait <= 0 {
				return err
			}
			return waitStreaming(cmd, flags, d.Name, info, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.DSN, "dsn", "", "the database's connection string (URL or key=value); stored in __cairn_connectors")
	f.StringSliceVar(&d.Tables, "tables", nil, "tables to capture, schema.table or table (public); default all")
	f.StringVar(&d.TopicPrefix, "topic-prefix", "", "prefix of the topic names (default NAME)")
	f.StringVar(&d.Slot, "slot", "", "replication slot (default cairn_NAME)")
	f.StringVar(&d.Publication, "publication", "", "publication (default cairn_NAME)")
	f.Int32Var(&d.Partitions, "partitions", 1, "partitions of the topics the connector creates")
	f.StringVar(&d.SnapshotMode, "snapshot", "initial", "initial: read the tables' rows first; never: changes only")
	f.StringVar(&outbox.Table, "outbox-table", "", "route this outbox table's inserts to event-store streams <aggregatetype>/<aggregateid> (columns id, aggregatetype, aggregateid, type, payload)")
	f.StringVar(&outbox.Topic, "outbox-topic", "", "the event-store topic of the outbox's streams (default <prefix>.outbox, created with cleanup.policy=stream)")
	f.DurationVar(&heartbeat, "heartbeat-interval", 10*time.Second, "how often an idle connector moves its slot forward")
	f.DurationVar(&wait, "wait", 0, "wait up to this long until the connector streams (its snapshot read), printing its progress; 0: return once created")
	_ = cmd.MarkFlagRequired("dsn")
	return cmd
}

// waitStreaming polls the connector's status until it streams, printing
// each change of its state and snapshot progress; a failed connector or the
// end of the wait is the command's error.
func waitStreaming(cmd *cobra.Command, flags *connectorFlags, name string, info connectors.Info, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		m := info.Metrics
		progress := info.State
		if info.State == "snapshot" {
			progress = fmt.Sprintf("snapshot: %d of %d tables, %d rows", m.SnapshotTablesDone, m.SnapshotTables, m.SnapshotRows)
		}
		if info.Error != "" {
			progress += " (" + info.Error + ")"
		}
		if progress != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "connector %s: %s\n", name, progress)
			last = progress
		}
		switch info.State {
		case "streaming":
			return nil
		case "failed":
			return fmt.Errorf("connector %s failed: %s", name, info.Error)
		case "paused":
			return fmt.Errorf("connector %s is paused", name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connector %s: still %s after --wait %s", name, info.State, wait)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(100 * time.Millisecond):
		}
		if err := flags.call(cmd, "GET", "/"+name, nil, &info); err != nil {
			return err
		}
	}
}
