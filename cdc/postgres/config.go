package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairnlog/cairn/cdc"
)

// Config is one PostgreSQL connector's definition.
type Config struct {
	// Name names the connector: the CloudEvents source, the seed of event
	// ids and, by default, the topic prefix, slot and publication.
	Name string
	// DSN is the database's connection string (URL or key=value).
	DSN string
	// Tables lists the captured tables, "schema.table" or "table" (in
	// public); empty captures every table (a publication FOR ALL TABLES,
	// which needs a superuser). Read when the publication is created.
	Tables []string
	// TopicPrefix starts every topic name: <prefix>.<schema>.<table>.
	// Default: Name.
	TopicPrefix string
	// Slot and Publication name the replication slot and publication,
	// created when missing. Default: cairn_<name> (non-alphanumerics as _).
	Slot, Publication string
	// Partitions is the partition count of the topics the connector
	// creates. Default 1.
	Partitions int32
	// StatusInterval is how often the connector reports its position to
	// the server (and answers its keepalives). Default 10 s.
	StatusInterval time.Duration
	// HeartbeatInterval is how often an idle connector writes a heartbeat
	// record at the server's position and confirms it, so that a slot
	// whose tables see no changes does not hold WAL. Default 10 s.
	HeartbeatInterval time.Duration
	// TxnChangesMax bounds the changes held in memory for transactions not
	// yet committed; a larger transaction stops the connector with
	// ErrTxnTooLarge. Default 1,000,000.
	TxnChangesMax int
	// SnapshotMode is "initial" (the default: a new connector first reads
	// the rows its tables hold, as op=r events) or "never".
	SnapshotMode string
	// SnapshotChunkRows is the rows of one snapshot read and append
	// (default 10,000); SnapshotTablesMax the tables read at once
	// (default 2).
	SnapshotChunkRows int
	SnapshotTablesMax int
	// Outbox, when set, routes the inserts of an outbox table to
	// event-store streams (cdc.Outbox); Topic defaults to <prefix>.outbox,
	// created with cleanup.policy=stream.
	Outbox *cdc.Outbox
	// BatchBytesMax bounds one append; a transaction's changes for one
	// partition beyond it are split into several appends. Default 900 KiB,
	// under the default max.message.bytes.
	BatchBytesMax int
}

// The snapshot modes.
const (
	SnapshotInitial = "initial"
	SnapshotNever   = "never"
)

var identifierPart = regexp.MustCompile(`[^a-z0-9_]`)

// WithDefaults fills the unset fields.
func (c Config) WithDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = c.Name
	}
	ident := "cairn_" + identifierPart.ReplaceAllString(strings.ToLower(c.Name), "_")
	if c.Slot == "" {
		c.Slot = ident
	}
	if c.Publication == "" {
		c.Publication = ident
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.TxnChangesMax <= 0 {
		c.TxnChangesMax = 1_000_000
	}
	if c.SnapshotMode == "" {
		c.SnapshotMode = SnapshotInitial
	}
	if c.SnapshotChunkRows <= 0 {
		c.SnapshotChunkRows = 10_000
	}
	if c.SnapshotTablesMax <= 0 {
		c.SnapshotTablesMax = 2
	}
	if c.Outbox != nil {
		o := c.Outbox.WithDefaults()
		if o.Topic == "" {
			o.Topic = c.TopicPrefix + ".outbox"
		}
		c.Outbox = &o
	}
	if c.BatchBytesMax <= 0 {
		c.BatchBytesMax = 900 << 10
	}
	return c
}

// Validate reports a definition the connector cannot run.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("connector: a name is needed")
	}
	if c.DSN == "" {
		return fmt.Errorf("connector %s: a DSN is needed", c.Name)
	}
	if len(c.Slot) > 63 || identifierPart.MatchString(c.Slot) {
		return fmt.Errorf("connector %s: slot name %q: at most 63 of a-z, 0-9 and _", c.Name, c.Slot)
	}
	if c.SnapshotMode != SnapshotInitial && c.SnapshotMode != SnapshotNever {
		return fmt.Errorf("connector %s: snapshot mode %q: %s or %s", c.Name, c.SnapshotMode, SnapshotInitial, SnapshotNever)
	}
	if c.Outbox != nil && c.Outbox.Table == "" {
		return fmt.Errorf("connector %s: the outbox needs its table", c.Name)
	}
	for _, t := range c.Tables {
		if _, _, err := splitTable(t); err != nil {
			return fmt.Errorf("connector %s: %w", c.Name, err)
		}
	}
	return nil
}

// splitTable reads "schema.table" or "table" (in public).
func splitTable(s string) (schema, table string, err error) {
	schema, table, ok := strings.Cut(s, ".")
	if !ok {
		schema, table = "public", s
	}
	if schema == "" || table == "" || strings.Contains(table, ".") {
		return "", "", fmt.Errorf("table %q: want schema.table or table", s)
	}
	return schema, table, nil
}
