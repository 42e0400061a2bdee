package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairnlog/cairn/connectors"
)

// connectorFlags are the flags every connector subcommand shares.
type connectorFlags struct {
	server  string
	timeout time.Duration
}

func (f *connectorFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.server, "server", "http://127.0.0.1:8080", "the connectors API: cairn serve's --http-addr as a URL")
	flags.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long one call may take")
}

func newConnectorCommand() *cobra.Command {
	var flags connectorFlags
	cmd := &cobra.Command{
		Use:   "connector",
		Short: "Create and manage change-data-capture connectors",
		Long: `Create, list, inspect, pause, resume and delete the change-data-capture
connectors that run inside cairn serve. A PostgreSQL connector streams a
database's committed changes (logical replication, pgoutput) into topics
<prefix>.<schema>.<table> as Debezium JSON envelopes, effectively once: the
source position is written in the same append as the events. Definitions
live in the topic __cairn_connectors; the node leading it runs them. These
commands use the API on cairn serve's HTTP address (--server, default
http://127.0.0.1:8080, or CAIRN_SERVER). See docs/cdc.md.`,
		Example: `  cairn connector create postgres shop --dsn postgres://cdc@db/shop --tables public.orders,public.outbox
  cairn connector list
  cairn connector status shop
  cairn connector pause shop
  cairn connector resume shop
  cairn connector delete shop`,
		Args: cobra.NoArgs,
	}
	flags.register(cmd.PersistentFlags())
	cmd.AddCommand(newConnectorCreateCommand(&flags), newConnectorListCommand(&flags), newConnectorStatusCommand(&flags),
		newConnectorPauseCommand(&flags, true), newConnectorPauseCommand(&flags, false), newConnectorDeleteCommand(&flags))
	return cmd
}

// call sends one API request and decodes the answer into out (when not
// nil); an error answer becomes the command's error.
func (f *connectorFlags) call(cmd *cobra.Command, method, path string, body, out any) error {
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	ctx, cancel := commandContext(cmd, f.timeout)
	defer cancel()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		in = bytes.NewReader(b)
	}
	url := strings.TrimSuffix(f.server, "/") + connectors.PathPrefix + path
	req, err := http.NewRequestWithContext(ctx, method, url, in)
	if err != nil {
		return fmt.Errorf("--server %q: %w", f.server, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return stopError(ctx, fmt.Errorf("%s %s: %w", method, url, err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return stopError(ctx, fmt.Errorf("%s %s: %w", method, url, err))
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(answer, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(answer))
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return nil
}

// printInfo writes a connector's status, one "field: value" per line.
func printInfo(w io.Writer, info connectors.Info) error {
	d, m := info.Definition, info.Metrics
	tables := "all"
	if len(d.Tables) > 0 {
		tables = strings.Join(d.Tables, ",")
	}
	lines := []string{
		"name: " + d.Name,
		"type: " + d.Type,
		"state: " + info.State,
	}
	if info.Error != "" {
		lines = append(lines, "error: "+info.Error)
	}
	lines = append(lines,
		"dsn: "+d.DSN,
		"tables: "+tables,
		fmt.Sprintf("restarts: %d", info.Restarts),
		"confirmed lsn: "+m.ConfirmedLSN,
		"server lsn: "+m.ServerLSN,
		fmt.Sprintf("slot lag: %d bytes", m.SlotLagBytes),
		fmt.Sprintf("lag: %d ms", m.LagMs),
		fmt.Sprintf("events: %d", m.Events),
		fmt.Sprintf("transactions: %d (%d streamed in progress)", m.Transactions, m.StreamedTransactions),
		fmt.Sprintf("heartbeats: %d", m.Heartbeats),
		fmt.Sprintf("snapshot: %d of %d tables, %d rows", m.SnapshotTablesDone, m.SnapshotTables, m.SnapshotRows),
		fmt.Sprintf("pgoutput protocol: v%d", m.ProtocolVersion),
	)
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}
