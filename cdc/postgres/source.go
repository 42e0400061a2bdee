package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/env"
)

// Log is where a connector writes: Cairn's partitions (cdc/logsink), or a
// test's.
type Log interface {
	// Partitions returns a topic's partition count, creating the topic
	// with partitions and configs when it is missing.
	Partitions(ctx context.Context, topic string, partitions int32, configs map[string]string) (int32, error)
	// Topics lists the existing topics whose names start with prefix.
	Topics(prefix string) []string
	// LastPosition is the highest cdc position among a partition's last
	// records (the zero Position when it holds none).
	LastPosition(ctx context.Context, p cdc.PartitionID) (cdc.Position, error)
	// Records calls fn with every record of p, in order, up to what is
	// acknowledged.
	Records(ctx context.Context, p cdc.PartitionID, fn func(batch.Record) error) error
	// Append writes records as one atomic append to p. The wait it
	// returns blocks until they are durable as acks=all makes them:
	// committed by a quorum on a cluster, synced on a single node.
	Append(ctx context.Context, p cdc.PartitionID, records []batch.Record) (wait func(context.Context) error, err error)
}

// AtomicLog is a Log that can also write appends to several partitions
// as one transaction (Kafka's), which read_committed readers see whole or
// not at all: a database transaction that spans partitions is written so.
type AtomicLog interface {
	Log
	// Fence makes the caller the only writer of the transactional id id
	// (a writer still running elsewhere is fenced) and returns once its
	// unfinished transaction ended: the partitions then hold no open
	// transaction of id, and LastPosition reads committed records only.
	Fence(ctx context.Context, id string) error
	// AppendAtomic writes the batches (one partition's in order) as one
	// transaction of id and returns once its commit is decided and its
	// records are durable as acks=all makes them.
	AppendAtomic(ctx context.Context, id string, batches []cdc.Batch) error
}

// TransactionalID is the transactional id a connector's atomic appends
// use: one per connector, so that its next run fences the previous one.
func TransactionalID(connector string) string { return "__cairn_cdc_" + connector }

// heartbeatKey is the key of heartbeat records; the snapshot's progress
// records share their topic under other keys.
const heartbeatKey = "heartbeat"

// HeartbeatTopic is the topic of a connector's heartbeat records.
func HeartbeatTopic(prefix string) string { return prefix + ".__heartbeat" }

// Connector streams one database's changes into the log.
type Connector struct {
	cfg    Config
	log    Log
	clock  env.Clock
	logger *slog.Logger

	mu     sync.Mutex
	status Status
}

// New returns a connector; Run runs it.
func New(cfg Config, log Log, clock env.Clock, logger *slog.Logger) (*Connector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg, log: log, clock: clock, logger: logger.With("connector", cfg.Name)}, nil
}

// session is one Run's state.
type session struct {
	c        *Connector
	query    *pgx.Conn
	repl     *pgconn.PgConn
	naming   cdc.Naming
	renderer *cdc.Renderer
	asm      *assembler
	held     cdc.Holdings
	parts    map[string]int32

	appendMu sync.Mutex // the snapshot's tables take turns to plan and append

	// pending holds committed transactions not appended yet: while more
	// messages are waiting, several transactions go out in one append per
	// partition (one durability wait for all).
	pending        []*cdc.Txn
	pendingChanges int
	// inflight is the last group appended and not yet confirmed: the next
	// group is received and rendered while it becomes durable.
	inflight *inflightGroup

	// lastCommit is the commit LSN of the last transaction rendered
	// (source.sequence's first); after a restart, the slot's confirmed
	// position until the first transaction.
	lastCommit uint64

	received  uint64 // the end of the last WAL data received
	confirmed uint64 // the position confirmed to the server: the log holds it
	walEnd    uint64 // the server's position from its last keepalive
}

// Run streams until ctx ends (returning nil) or an error stops it. A
// restarted Run resumes from what the log holds.
func (c *Connector) Run(ctx context.Context) (err error) {
	c.setState("starting", nil)
	defer func() {
		if ctx.Err() != nil {
			err = nil
		}
		c.setState("stopped", err)
	}()
	s := &session{c: c, renderer: cdc.NewRenderer(), asm: newAssembler(c.cfg.TxnChangesMax), held: cdc.Holdings{}, parts: map[string]int32{}}
	if s.query, err = pgx.Connect(ctx, c.cfg.DSN); err != nil {
		return fmt.Errorf("connector %s: connect: %w", c.cfg.Name, err)
	}
	defer s.query.Close(context.Background())
	if s.repl, err = connectReplication(ctx, c.cfg.DSN); err != nil {
		return fmt.Errorf("connector %s: replication connection: %w", c.cfg.Name, err)
	}
	defer s.repl.Close(context.Background())
	if err := s.start(ctx); err != nil {
		return fmt.Errorf("connector %s: %w", c.cfg.Name, err)
	}
	c.setState("streaming", nil)
	if err := s.stream(ctx); err != nil {
		return fmt.Errorf("connector %s: %w", c.cfg.Name, err)
	}
	return nil
}

// connectReplication opens a logical replication connection whose output
// settings are the ones the renderer reads.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]string{
		"replication": "database", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
		"extra_float_digits": "3", "bytea_output": "hex", "TimeZone": "UTC",
	} {
		cfg.RuntimeParams[k] = v
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// start makes sure the publication and the slot exist and the slot has
// everything after what the log holds, then starts replication.
func (s *session) start(ctx context.Context) error {
	cfg := s.c.cfg
	var db string
	var versionNum int
	if err := s.query.QueryRow(ctx, "SELECT current_database(), current_setting('server_version_num')::int").Scan(&db, &versionNum); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	s.naming = cdc.Naming{Connector: cfg.Name, Prefix: cfg.TopicPrefix, Database: db, Outbox: cfg.Outbox}
	if err := s.ensurePublication(ctx); err != nil {
		return err
	}
	if al, ok := s.c.log.(AtomicLog); ok {
		// Before the positions are read: a transaction the previous run
		// left open must be ended, and its records not count as held.
		if err := al.Fence(ctx, TransactionalID(cfg.Name)); err != nil {
			return err
		}
	}
	if err := s.readHoldings(ctx); err != nil {
		return err
	}
	slot, err := s.readSlot(ctx)
	if err != nil {
		return err
	}
	create, err := checkSlot(cfg.Slot, db, slot, s.held.Max())
	if err != nil {
		return err
	}
	s.confirmed = slot.confirmed
	var snapshotName string
	if create {
		action := "NOEXPORT_SNAPSHOT"
		if cfg.SnapshotMode == SnapshotInitial {
			// Valid until the next command on the replication connection:
			// the snapshot reads inside it before replication starts.
			action = "EXPORT_SNAPSHOT"
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, cfg.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{SnapshotAction: action})
		if err != nil {
			return fmt.Errorf("create slot %s: %w", cfg.Slot, err)
		}
		lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
		if err != nil {
			return fmt.Errorf("slot %s: consistent point: %w", cfg.Slot, err)
		}
		if cfg.SnapshotMode == SnapshotInitial {
			if _, err := s.partitions(ctx, HeartbeatTopic(cfg.TopicPrefix)); err != nil {
				return err
			}
			if err := s.writeProgress(ctx, snapshotStartKey, snapshotProgress{LSN: uint64(lsn)}); err != nil {
				return err
			}
			snapshotName = res.SnapshotName
		}
		// The log holds the slot's start from now on: a slot found later
		// past it was moved by someone else.
		if err := s.heartbeat(ctx, uint64(lsn)); err != nil {
			return err
		}
		s.c.logger.Info("created replication slot", "slot", cfg.Slot, "lsn", res.ConsistentPoint)
	}
	if cfg.SnapshotMode == SnapshotInitial {
		if err := s.snapshot(ctx, snapshotName); err != nil {
			return err
		}
	}
	s.received = s.confirmed
	s.lastCommit = s.confirmed
	args := []string{"publication_names '" + cfg.Publication + "'", "messages 'true'"}
	if versionNum >= 140000 {
		args = append(args, "proto_version '2'", "streaming 'true'")
	} else {
		args = append(args, "proto_version '1'")
	}
	// From the slot's confirmed position (the server ignores an earlier
	// start): transactions the log already holds in part come again and
	// the holdings skip what each partition has.
	if err := s.startReplication(ctx, args); err != nil {
		return err
	}
	s.c.update(func(st *Status) {
		st.ConfirmedLSN = s.confirmed
		st.ProtocolVersion = 1 + boolInt(versionNum >= 140000)
	})
	return nil
}

// slotBusyWaitMax bounds the wait for a slot another sender still holds:
// the server's sender of a connector that just stopped lets go once it
// notices its connection closed.
const (
	slotBusyWaitMax = 30 * time.Second
	slotBusyPoll    = 200 * time.Millisecond
)

func (s *session) startReplication(ctx context.Context, args []string) error {
	slot := s.c.cfg.Slot
	deadline := s.c.clock.Now().Add(slotBusyWaitMax)
	for {
		err := pglogrepl.StartReplication(ctx, s.repl, slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || !s.c.clock.Now().Before(deadline) {
			if err != nil {
				return fmt.Errorf("start replication from slot %s: %w", slot, err)
			}
			return nil
		}
		t := s.c.clock.NewTimer(slotBusyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *session) ensurePublication(ctx context.Context) error {
	cfg := s.c.cfg
	var exists bool
	if err := s.query.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("look for publication %s: %w", cfg.Publication, err)
	}
	if exists {
		return nil
	}
	stmt := "CREATE PUBLICATION " + pgx.Identifier{cfg.Publication}.Sanitize()
	if len(cfg.Tables) == 0 {
		stmt += " FOR ALL TABLES"
	} else {
		names := make([]string, len(cfg.Tables))
		for i, t := range cfg.Tables {
			schema, table, _ := splitTable(t) // Validate checked them
			names[i] = pgx.Identifier{schema, table}.Sanitize()
		}
		stmt += " FOR TABLE " + strings.Join(names, ", ")
	}
	if _, err := s.query.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create publication %s: %w", cfg.Publication, err)
	}
	return nil
}

func (s *session) readSlot(ctx context.Context) (slotState, error) {
	var st slotState
	var confirmed pglogrepl.LSN
	var walStatus *string
	err := s.query.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn, '0/0'), wal_status, coalesce(plugin, ''), coalesce(database, '') FROM pg_replication_slots WHERE slot_name = $1`, s.c.cfg.Slot).
		Scan(&confirmed, &walStatus, &st.plugin, &st.database)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotState{}, nil
	}
	if err != nil {
		return slotState{}, fmt.Errorf("read slot %s: %w", s.c.cfg.Slot, err)
	}
	st.found, st.confirmed = true, uint64(confirmed)
	if walStatus != nil {
		st.walStatus = *walStatus
	}
	return st, nil
}

// readHoldings learns from the log what each of the connector's partitions
// holds.
func (s *session) readHoldings(ctx context.Context) error {
	prefix := s.c.cfg.TopicPrefix + "."
	topics := s.c.log.Topics(prefix)
	if o := s.c.cfg.Outbox; o != nil && !strings.HasPrefix(o.Topic, prefix) {
		// The outbox's stream topic is named apart: its positions count too.
		for _, t := range s.c.log.Topics(o.Topic) {
			if t == o.Topic {
				topics = append(topics, t)
			}
		}
	}
	for _, topic := range topics {
		n, err := s.partitions(ctx, topic)
		if err != nil {
			return err
		}
		for i := int32(0); i < n; i++ {
			pid := cdc.PartitionID{Topic: topic, Index: i}
			pos, err := s.c.log.LastPosition(ctx, pid)
			if err != nil {
				return fmt.Errorf("read the position of %s-%d: %w", topic, i, err)
			}
			if !pos.IsZero() {
				s.held[pid] = pos
			}
		}
	}
	s.c.logger.Info("read the log's position", "held", s.held.Max().String(), "partitions", len(s.held))
	return nil
}

func (s *session) partitions(ctx context.Context, topic string) (int32, error) {
	if n, ok := s.parts[topic]; ok {
		return n, nil
	}
	var configs map[string]string
	if o := s.c.cfg.Outbox; o != nil && topic == o.Topic {
		configs = map[string]string{"cleanup.policy": "stream"}
	}
	n, err := s.c.log.Partitions(ctx, topic, s.c.cfg.Partitions, configs)
	if err != nil {
		return 0, fmt.Errorf("topic %s: %w", topic, err)
	}
	s.parts[topic] = n
	return n, nil
}

// heartbeat writes a heartbeat record at lsn and, once durable, confirms
// lsn: the log then holds the position the slot is confirmed at.
func (s *session) heartbeat(ctx context.Context, lsn uint64) error {
	topic := HeartbeatTopic(s.c.cfg.TopicPrefix)
	if _, err := s.partitions(ctx, topic); err != nil {
		return err
	}
	pos := cdc.Position{CommitLSN: lsn}
	value, _ := json.Marshal(map[string]any{"lsn": pglogrepl.LSN(lsn).String(), "ts_ms": s.c.clock.Now().UnixMilli()})
	rec := batch.Record{TimestampMs: s.c.clock.Now().UnixMilli(), Key: []byte(heartbeatKey), Value: value,
		Headers: []batch.RecordHeader{{Key: cdc.HeaderPosition, Value: []byte(pos.String())}}}
	pid := cdc.PartitionID{Topic: topic}
	wait, err := s.c.log.Append(ctx, pid, []batch.Record{rec})
	if err != nil {
		return fmt.Errorf("append a heartbeat: %w", err)
	}
	if err := wait(ctx); err != nil {
		return fmt.Errorf("heartbeat durable: %w", err)
	}
	s.held.Advance(pid, pos)
	if lsn > s.confirmed {
		s.confirmed = lsn
	}
	s.c.update(func(st *Status) { st.ConfirmedLSN = s.confirmed; st.Heartbeats++ })
	return nil
}

// stream receives, appends and confirms until ctx ends or an error.
func (s *session) stream(ctx context.Context) error {
	cfg := s.c.cfg
	clock := s.c.clock
	nextStatus := clock.Now().Add(cfg.StatusInterval)
	nextHeartbeat := clock.Now().Add(cfg.HeartbeatInterval)
	for ctx.Err() == nil {
		now := clock.Now()
		if !now.Before(nextHeartbeat) {
			if err := s.flush(ctx); err != nil {
				return err
			}
			// A heartbeat confirms past everything received: the last
			// group must be durable and confirmed first.
			if err := s.settle(ctx); err != nil {
				return err
			}
			if !s.asm.busy() && s.walEnd > s.confirmed {
				if err := s.heartbeat(ctx, s.walEnd); err != nil {
					return err
				}
				if err := s.sendStatus(ctx, false); err != nil {
					return err
				}
			}
			nextHeartbeat = now.Add(cfg.HeartbeatInterval)
		}
		if !now.Before(nextStatus) {
			if err := s.sendStatus(ctx, false); err != nil {
				return err
			}
			nextStatus = now.Add(cfg.StatusInterval)
		}
		deadline := nextStatus
		if nextHeartbeat.Before(deadline) {
			deadline = nextHeartbeat
		}
		if len(s.pending) > 0 || s.inflight != nil {
			// Transactions wait to be appended, or their append to be
			// confirmed: only as long as more messages follow at once.
			deadline = now.Add(groupWait)
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		raw, err := s.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				if err := s.flush(ctx); err != nil {
					return err
				}
				if len(s.pending) == 0 {
					if err := s.settle(ctx); err != nil {
						return err
					}
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		if err := s.handle(ctx, raw); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) handle(ctx context.Context, raw pgproto3.BackendMessage) error {
	switch msg := raw.(type) {
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("server: %w", pgconn.ErrorResponseToPgError(msg))
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
			s.noteWALEnd(uint64(ka.ServerWALEnd))
			if ka.ReplyRequested {
				return s.sendStatus(ctx, false)
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("XLogData: %w", err)
			}
			return s.xlogData(ctx, xld)
		}
	}
	return nil
}

// noteWALEnd records the server's position from a keepalive: everything
// before it was sent, so once no transaction is open it can be confirmed
// (after a heartbeat record at it).
func (s *session) noteWALEnd(lsn uint64) {
	if !s.asm.busy() && len(s.pending) == 0 && lsn > s.walEnd {
		s.walEnd = lsn
	}
	s.c.update(func(st *Status) { st.ServerLSN = max(st.ServerLSN, lsn) })
}

func (s *session) xlogData(ctx context.Context, xld pglogrepl.XLogData) error {
	end := uint64(xld.WALStart) + uint64(len(xld.WALData))
	s.received = max(s.received, end)
	s.c.update(func(st *Status) { st.ServerLSN = max(st.ServerLSN, uint64(xld.ServerWALEnd)) })
	// The connection reuses its read buffer, and the decoded message's
	// values point into the data: a transaction held until its commit
	// needs its own copy.
	data := append([]byte(nil), xld.WALData...)
	msg, err := pglogrepl.ParseV2(data, s.asm.inStream)
	if err != nil {
		return fmt.Errorf("decode pgoutput at %s: %w", xld.WALStart, err)
	}
	switch rel := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return s.relation(ctx, &rel.RelationMessage)
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, rel)
	}
	txn, err := s.asm.step(msg, uint64(xld.WALStart), xld.ServerTime)
	if err != nil {
		return fmt.Errorf("at %s: %w", xld.WALStart, err)
	}
	if txn == nil {
		return nil
	}
	s.pending = append(s.pending, txn)
	s.pendingChanges += len(txn.Changes)
	if s.pendingChanges >= groupChangesMax || len(s.pending) >= groupTxnsMax {
		return s.flush(ctx)
	}
	return nil
}

// relation takes a table's new shape; its key is its primary key (Debezium's
// message key), or for a table without one the replica identity index.
func (s *session) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	rows, err := s.query.Query(ctx, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1 AND i.indisprimary`, m.RelationID)
	if err != nil {
		return fmt.Errorf("primary key of %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	keys := map[string]bool{}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("primary key of %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	for _, n := range names {
		keys[n] = true
	}
	if len(keys) == 0 && m.ReplicaIdentity == 'i' {
		for _, c := range m.Columns {
			if c.Flags&1 != 0 {
				keys[c.Name] = true
			}
		}
	}
	s.asm.relation(m, keys)
	return nil
}

// Bounds of the transactions appended together.
const (
	// groupWait is how long committed transactions wait for the next
	// message before they are appended.
	groupWait = 2 * time.Millisecond
	// groupChangesMax and groupTxnsMax bound what is held meanwhile.
	groupChangesMax = 10_000
	groupTxnsMax    = 1_000
)

// flush appends the pending transactions' events (what each partition does
// not hold yet; one append per partition for all of them, split only by
// BatchBytesMax) and leaves them in flight: the previous group in flight
// is settled first (durable, then its last commit confirmed), so the
// server is told a position only once the log holds it, and a partition's
// appends stay in order.
func (s *session) flush(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	var events []cdc.Event
	now := s.c.clock.Now().UnixMilli()
	for _, txn := range s.pending {
		txn.LastCommitLSN, s.lastCommit = s.lastCommit, txn.CommitLSN
		evs, err := s.renderer.Events(s.naming, *txn, now)
		if err != nil {
			return err
		}
		events = append(events, evs...)
	}
	for _, ev := range events {
		if _, err := s.partitions(ctx, ev.Topic); err != nil {
			return err
		}
	}
	plan, err := cdc.Plan(events, func(topic string) int32 { return s.parts[topic] }, s.held, s.c.cfg.BatchBytesMax)
	if err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	if plan, err = s.appendAtomic(ctx, plan); err != nil {
		return err
	}
	waits, err := s.appendStart(ctx, plan)
	if err != nil {
		return err
	}
	s.inflight = &inflightGroup{waits: waits, last: s.pending[len(s.pending)-1], txns: len(s.pending), events: len(events)}
	s.pending, s.pendingChanges = s.pending[:0], 0
	return nil
}

// inflightGroup is a group of transactions appended, not yet confirmed.
type inflightGroup struct {
	waits  map[cdc.PartitionID]func(context.Context) error
	last   *cdc.Txn
	txns   int
	events int
}

// settle waits until the group in flight is durable, then confirms its
// last commit to the server.
func (s *session) settle(ctx context.Context) error {
	g := s.inflight
	if g == nil {
		return nil
	}
	s.inflight = nil
	if err := waitAll(ctx, g.waits); err != nil {
		return err
	}
	if g.last.CommitLSN > s.confirmed {
		s.confirmed = g.last.CommitLSN
	}
	s.c.update(func(st *Status) {
		st.ConfirmedLSN = s.confirmed
		st.Events += int64(g.events)
		st.Transactions += int64(g.txns)
		st.StreamedTransactions = s.asm.streamedCommits
		st.LastCommitTime = g.last.CommitTime
	})
	return s.sendStatus(ctx, false)
}

// appendAll appends the batches and waits for all (appendStart). With txn
// (database transactions, not the snapshot's rows) the part of a plan
// spanning partitions is one transaction of the log's when it can
// (appendAtomic).
func (s *session) appendAll(ctx context.Context, plan []cdc.Batch, txn bool) error {
	if txn {
		var err error
		if plan, err = s.appendAtomic(ctx, plan); err != nil {
			return err
		}
	}
	waits, err := s.appendStart(ctx, plan)
	if err != nil {
		return err
	}
	return waitAll(ctx, waits)
}

// appendAtomic writes the part of the plan that spans partitions as one
// transaction when the log can (splitAtomic), durable and committed when
// it returns, and returns the rest of the plan.
func (s *session) appendAtomic(ctx context.Context, plan []cdc.Batch) ([]cdc.Batch, error) {
	al, ok := s.c.log.(AtomicLog)
	if !ok {
		return plan, nil
	}
	atomic, rest := s.splitAtomic(plan)
	if atomic == nil {
		return plan, nil
	}
	if err := al.AppendAtomic(ctx, TransactionalID(s.c.cfg.Name), atomic); err != nil {
		return nil, err
	}
	for _, b := range atomic {
		s.held.Advance(b.Partition, b.Last)
	}
	return rest, nil
}

// appendStart appends the batches, one partition's in order, and returns
// the wait of each partition's last append. A partition is one ordered
// log whose durability is a prefix (synced, or committed by a quorum, up
// to an offset), so its later append durable means its earlier ones are:
// its last position never passes a gap, and only the last wait counts.
func (s *session) appendStart(ctx context.Context, plan []cdc.Batch) (map[cdc.PartitionID]func(context.Context) error, error) {
	pending := map[cdc.PartitionID]func(context.Context) error{}
	for _, b := range plan {
		wait, err := s.c.log.Append(ctx, b.Partition, b.Records)
		if err != nil {
			return nil, fmt.Errorf("append to %s-%d: %w", b.Partition.Topic, b.Partition.Index, err)
		}
		pending[b.Partition] = wait
		s.held.Advance(b.Partition, b.Last)
	}
	return pending, nil
}

func waitAll(ctx context.Context, waits map[cdc.PartitionID]func(context.Context) error) error {
	for p, wait := range waits {
		if err := wait(ctx); err != nil {
			return fmt.Errorf("append to %s-%d: %w", p.Topic, p.Index, err)
		}
	}
	return nil
}

// splitAtomic returns the part of the plan to write as one transaction,
// nil when it needs none (it touches one partition: one partition's
// appends are ordered, and a restart completes them from their
// positions), and the rest. A stream topic (the outbox's) takes no
// transactions: its events are appended after the transaction commits,
// and a crash between the two is completed on restart from the outbox
// partition's position (and recognised by event id).
func (s *session) splitAtomic(plan []cdc.Batch) (atomic, rest []cdc.Batch) {
	var first cdc.PartitionID
	spans := false
	for _, b := range plan {
		if o := s.c.cfg.Outbox; o != nil && b.Partition.Topic == o.Topic {
			rest = append(rest, b)
			continue
		}
		atomic = append(atomic, b)
		if len(atomic) == 1 {
			first = b.Partition
		} else if first != b.Partition {
			spans = true
		}
	}
	if !spans {
		return nil, plan
	}
	return atomic, rest
}

// sendStatus reports the confirmed position as flushed and applied: the
// server may recycle the WAL before it.
func (s *session) sendStatus(ctx context.Context, reply bool) error {
	if s.confirmed == 0 {
		return nil // pglogrepl would report the write position as flushed
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(max(s.received, s.confirmed)),
		WALFlushPosition: pglogrepl.LSN(s.confirmed),
		WALApplyPosition: pglogrepl.LSN(s.confirmed),
		ClientTime:       s.c.clock.Now(),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("send status: %w", err)
	}
	return nil
}

// Status is what `cairn connector status` shows.
type Status struct {
	State           string // starting, snapshot, streaming, stopped
	Error           string // why it stopped
	ProtocolVersion int    // pgoutput's
	ConfirmedLSN    uint64 // confirmed to the server: the log holds everything before
	ServerLSN       uint64 // the server's WAL position last heard of
	Events          int64
	Transactions    int64
	// StreamedTransactions were received in parts before their commit
	// (protocol v2, larger than the server's logical_decoding_work_mem).
	StreamedTransactions int64
	Heartbeats           int64
	LastCommitTime       time.Time // of the last transaction appended
	// The initial snapshot: tables to read, tables read, rows appended.
	SnapshotTables     int
	SnapshotTablesDone int
	SnapshotRows       int64
}

// LagBytes is the WAL the slot holds that the log does not: the server's
// position minus the confirmed one.
func (st Status) LagBytes() uint64 {
	if st.ServerLSN > st.ConfirmedLSN {
		return st.ServerLSN - st.ConfirmedLSN
	}
	return 0
}

// LSNString renders an LSN as PostgreSQL does (16/B374D848).
func LSNString(lsn uint64) string { return pglogrepl.LSN(lsn).String() }

// Status returns the connector's current figures.
func (c *Connector) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Connector) update(f func(*Status)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
}

func (c *Connector) setState(state string, err error) {
	c.update(func(st *Status) {
		st.State = state
		st.Error = ""
		if err != nil {
			st.Error = err.Error()
		}
	})
	if err != nil {
		c.logger.Warn("connector stopped", "err", err)
	}
}
