package connectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cdc/postgres"
)

// Topic holds the connector definitions: key = name, value = a
// Definition in JSON, a tombstone for a deleted connector. Compacted, one
// partition: its leader runs the connectors.
const Topic = "__cairn_connectors"

// TypePostgres is the only connector type so far.
const TypePostgres = "postgres"

// Errors the API maps to status codes.
var (
	ErrExists    = errors.New("connector already exists")
	ErrNotFound  = errors.New("no such connector")
	ErrInvalid   = errors.New("invalid connector definition")
	ErrNotLeader = errors.New("this node does not run the connectors")
	ErrForbidden = errors.New("forbidden")
)

// definitionVersion is the format of a stored definition.
const definitionVersion = 1

// Definition is a connector as stored and as the API takes it.
type Definition struct {
	Version     int      `json:"version"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	DSN         string   `json:"dsn"`
	Tables      []string `json:"tables,omitempty"`
	TopicPrefix string   `json:"topic_prefix,omitempty"`
	Slot        string   `json:"slot,omitempty"`
	Publication string   `json:"publication,omitempty"`
	Partitions  int32    `json:"partitions,omitempty"`
	// SnapshotMode: "initial" (default) or "never"; see postgres.Config.
	SnapshotMode string `json:"snapshot_mode,omitempty"`
	// Outbox routes an outbox table's inserts to event-store streams.
	Outbox *OutboxDefinition `json:"outbox,omitempty"`
	// HeartbeatIntervalMs: see postgres.Config.HeartbeatInterval.
	HeartbeatIntervalMs int64 `json:"heartbeat_interval_ms,omitempty"`
	Paused              bool  `json:"paused,omitempty"`
}

// OutboxDefinition is the outbox router's part of a definition (see
// cdc.Outbox; empty columns are Debezium's defaults).
type OutboxDefinition struct {
	Table               string `json:"table"` // schema.table or table
	Topic               string `json:"topic,omitempty"`
	IDColumn            string `json:"id_column,omitempty"`
	AggregateTypeColumn string `json:"aggregate_type_column,omitempty"`
	AggregateIDColumn   string `json:"aggregate_id_column,omitempty"`
	TypeColumn          string `json:"type_column,omitempty"`
	PayloadColumn       string `json:"payload_column,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// Postgres is the connector's configuration.
func (d Definition) Postgres() postgres.Config {
	var outbox *cdc.Outbox
	if o := d.Outbox; o != nil {
		schema, table, ok := strings.Cut(o.Table, ".")
		if !ok {
			schema, table = "", o.Table
		}
		outbox = &cdc.Outbox{Schema: schema, Table: table, Topic: o.Topic, IDColumn: o.IDColumn,
			AggregateTypeColumn: o.AggregateTypeColumn, AggregateIDColumn: o.AggregateIDColumn,
			TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn}
	}
	return postgres.Config{Outbox: outbox,
		Name: d.Name, DSN: d.DSN, Tables: d.Tables, TopicPrefix: d.TopicPrefix,
		Slot: d.Slot, Publication: d.Publication, Partitions: d.Partitions, SnapshotMode: d.SnapshotMode,
		HeartbeatInterval: time.Duration(d.HeartbeatIntervalMs) * time.Millisecond,
	}
}

// Validate reports a definition no connector can run.
func (d Definition) Validate() error {
	if !namePattern.MatchString(d.Name) {
		return fmt.Errorf("%w: name %q: 1 to 100 of A-Z a-z 0-9 _ . - (starting with a letter or digit)", ErrInvalid, d.Name)
	}
	if d.Type != TypePostgres {
		return fmt.Errorf("%w: type %q: only %q", ErrInvalid, d.Type, TypePostgres)
	}
	if d.Partitions < 0 || d.HeartbeatIntervalMs < 0 {
		return fmt.Errorf("%w: negative partitions or heartbeat interval", ErrInvalid)
	}
	if err := d.Postgres().WithDefaults().Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Redacted is the definition with the DSN's password masked, for listing.
func (d Definition) Redacted() Definition {
	d.DSN = RedactDSN(d.DSN)
	d.Tables = append([]string(nil), d.Tables...)
	if d.Outbox != nil {
		o := *d.Outbox
		d.Outbox = &o
	}
	return d
}

var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactDSN masks the password of a URL or key=value connection string.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return keywordPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// encode is a definition's record value.
func encode(d Definition) []byte {
	d.Version = definitionVersion
	b, _ := json.Marshal(d) // strings, ints and bools always marshal
	return b
}

// Definitions is the set the topic describes, by name.
type Definitions map[string]Definition

// apply takes one record of the topic: a definition, or a tombstone.
func (ds Definitions) apply(key, value []byte) error {
	if value == nil {
		delete(ds, string(key))
		return nil
	}
	var d Definition
	if err := json.Unmarshal(value, &d); err != nil {
		return fmt.Errorf("connector %q: %w", key, err)
	}
	if d.Version != definitionVersion {
		return fmt.Errorf("connector %q: definition version %d, this node reads %d", key, d.Version, definitionVersion)
	}
	if d.Name != string(key) {
		return fmt.Errorf("connector %q: definition names %q", key, d.Name)
	}
	ds[d.Name] = d
	return nil
}
