package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
)

// The initial snapshot reads the rows the captured tables hold at the
// slot's start, as op=r events, before streaming from the slot:
//
//   - A new slot is created with an exported snapshot; every table is read
//     inside it (SET TRANSACTION SNAPSHOT), so the rows are exactly the
//     state at the slot's consistent point, and the stream continues from
//     there with nothing lost or doubled.
//   - A table is read in primary-key order, in chunks of SnapshotChunkRows
//     (keyset pagination); up to SnapshotTablesMax tables at once.
//   - Snapshot rows have the position (consistent point - 1, ordinal of
//     the row in its table), below every streamed change. After a chunk is
//     durable a progress record (key snapshot:<schema>.<table>, value
//     snapshotProgress) goes to the heartbeat topic; a table's last one says
//     done, and a final record with key "snapshot" says the whole snapshot
//     is. A restart resumes each table after its last recorded chunk; rows
//     of a chunk some partitions already got are skipped by their position.
//   - The exported snapshot ends with the connection that made it, so a
//     resumed snapshot reads the rest in a fresh one: a row changed after
//     the slot's start can then show its newer state in the snapshot before
//     the stream replays its changes (the final state is the same; Debezium's
//     resumed snapshots behave alike).
//   - A table without a primary key is read in one query, not resumable
//     within it. So is the outbox table, in the order its rows' inserting
//     transactions got their ids (age(xmin), then physical order): the
//     order of its events, which a random uuid key would not keep.

// snapshotProgress is a progress record's value.
type snapshotProgress struct {
	LSN     uint64   `json:"lsn,omitempty"` // snapshot-start: the slot's consistent point
	Table   string   `json:"table,omitempty"`
	Rows    uint32   `json:"rows"`               // rows appended so far: the next ordinal
	LastKey []string `json:"last_key,omitempty"` // the last row's key columns, as text
	Done    bool     `json:"done"`
}

// Keys of the snapshot's records in the heartbeat topic: its start (the
// slot's consistent point), its end, and each table's progress
// (snapshot:<schema>.<table>).
const (
	snapshotStartKey = "snapshot-start"
	snapshotKey      = "snapshot"
)

// snapshotState is what the heartbeat topic says of the snapshot.
type snapshotState struct {
	startLSN uint64 // 0: no snapshot was started (SnapshotMode never, or an older connector)
	done     bool
	tables   map[string]snapshotProgress
}

func (s *session) readSnapshotState(ctx context.Context) (snapshotState, error) {
	st := snapshotState{tables: map[string]snapshotProgress{}}
	pid := cdc.PartitionID{Topic: HeartbeatTopic(s.c.cfg.TopicPrefix)}
	if _, err := s.partitions(ctx, pid.Topic); err != nil {
		return st, err
	}
	err := s.c.log.Records(ctx, pid, func(r batch.Record) error {
		key := string(r.Key)
		switch {
		case key == snapshotStartKey:
			var p snapshotProgress
			if err := json.Unmarshal(r.Value, &p); err != nil {
				return fmt.Errorf("snapshot start: %w", err)
			}
			st.startLSN = p.LSN
		case key == snapshotKey:
			st.done = true
		case strings.HasPrefix(key, snapshotKey+":"):
			var p snapshotProgress
			if err := json.Unmarshal(r.Value, &p); err != nil {
				return fmt.Errorf("snapshot progress %s: %w", key, err)
			}
			st.tables[p.Table] = p
		}
		return nil
	})
	return st, err
}

// writeProgress appends a progress record and waits until it is durable.
func (s *session) writeProgress(ctx context.Context, key string, p snapshotProgress) error {
	value, _ := json.Marshal(p) // strings, numbers and bools always marshal
	pid := cdc.PartitionID{Topic: HeartbeatTopic(s.c.cfg.TopicPrefix)}
	wait, err := s.c.log.Append(ctx, pid, []batch.Record{{TimestampMs: s.c.clock.Now().UnixMilli(), Key: []byte(key), Value: value}})
	if err != nil {
		return fmt.Errorf("snapshot progress: %w", err)
	}
	return wait(ctx)
}

// snapshot reads what the snapshot has left to read; snapshotName is the
// slot's exported snapshot, or "" to read in a fresh one (resuming).
func (s *session) snapshot(ctx context.Context, snapshotName string) error {
	st, err := s.readSnapshotState(ctx)
	if err != nil || st.done || st.startLSN == 0 {
		return err
	}
	startLSN := st.startLSN
	s.c.setState("snapshot", nil)
	tables, err := s.publishedTables(ctx)
	if err != nil {
		return err
	}
	s.c.update(func(status *Status) { status.SnapshotTables = len(tables) })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		slots    = make(chan struct{}, s.c.cfg.SnapshotTablesMax)
	)
	for _, t := range tables {
		p := st.tables[t]
		if p.Done {
			s.c.update(func(status *Status) { status.SnapshotTablesDone++; status.SnapshotRows += int64(p.Rows) })
			continue
		}
		p.Table = t
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := s.snapshotTable(ctx, snapshotName, startLSN, p); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("snapshot of %s: %w", t, err)
				}
				errMu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := s.writeProgress(ctx, snapshotKey, snapshotProgress{Done: true}); err != nil {
		return err
	}
	s.c.logger.Info("snapshot done", "tables", len(tables))
	return nil
}

func (s *session) publishedTables(ctx context.Context) ([]string, error) {
	rows, err := s.query.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, s.c.cfg.Publication)
	if err != nil {
		return nil, fmt.Errorf("tables of publication %s: %w", s.c.cfg.Publication, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// snapshotTable reads one table from after p's last key, in chunks.
func (s *session) snapshotTable(ctx context.Context, snapshotName string, startLSN uint64, p snapshotProgress) error {
	conn, err := pgx.Connect(ctx, s.c.cfg.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The output the renderer reads, as the replication connection's.
	for _, set := range []string{"SET DateStyle = 'ISO, MDY'", "SET IntervalStyle = postgres", "SET extra_float_digits = 3", "SET bytea_output = hex", "SET TimeZone = 'UTC'"} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return err
		}
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if snapshotName != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshotName)); err != nil {
			return fmt.Errorf("use the slot's snapshot: %w", err)
		}
	}
	schema, name, _ := splitTable(p.Table)
	table, types, err := describeTable(ctx, tx, schema, name)
	if err != nil {
		return err
	}
	var keyCols []int
	for i, c := range table.Columns {
		if c.Key {
			keyCols = append(keyCols, i)
		}
	}
	// An outbox table's rows are events, so they are read in the order
	// their transactions wrote them, oldest first, not in key order: a
	// random uuid key would put an order's "shipped" before its "placed".
	// That order gives no key to resume from, so the table is read in one
	// query, as a table without a key.
	order := ""
	if o := s.c.cfg.Outbox; o != nil && o.Schema == schema && o.Table == name {
		keyCols, order = nil, " ORDER BY age(xmin) DESC, ctid"
	}
	// The next chunk is read while the last one is rendered, appended and
	// made durable: the database and the log work at the same time.
	rctx, cancel := context.WithCancel(ctx)
	chunks := make(chan snapshotChunk, 1)
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(chunks)
		for lastKey := p.LastKey; ; {
			rows, last, err := s.readChunk(rctx, tx, table, types, keyCols, lastKey, order)
			select {
			case chunks <- snapshotChunk{rows, last, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || len(keyCols) == 0 || len(rows) < s.c.cfg.SnapshotChunkRows {
				return
			}
			lastKey = last
		}
	})
	defer func() {
		cancel()
		reader.Wait()
	}()
	for {
		var ch snapshotChunk
		select {
		case ch = <-chunks:
		case <-ctx.Done():
			return ctx.Err()
		}
		rows, lastKey, err := ch.rows, ch.lastKey, ch.err
		if err != nil {
			return err
		}
		done := len(keyCols) == 0 || len(rows) < s.c.cfg.SnapshotChunkRows
		if len(rows) > 0 {
			if err := s.appendSnapshotRows(ctx, table, rows, startLSN, p.Rows); err != nil {
				return err
			}
			p.Rows += uint32(len(rows))
			p.LastKey = lastKey
		}
		p.Done = done
		if err := s.writeProgress(ctx, snapshotKey+":"+p.Table, p); err != nil {
			return err
		}
		s.c.update(func(st *Status) {
			st.SnapshotRows += int64(len(rows))
			if done {
				st.SnapshotTablesDone++
			}
		})
		if done {
			return nil
		}
	}
}

// snapshotChunk is one chunk read ahead: its rows, the last one's key, or
// the read's error.
type snapshotChunk struct {
	rows    []cdc.Row
	lastKey []string
	err     error
}

// describeTable reads a table's columns, their types' SQL names (for the
// casts of a chunk's last key) and its primary key.
func describeTable(ctx context.Context, tx pgx.Tx, schema, name string) (*cdc.Table, []string, error) {
	ident := pgx.Identifier{schema, name}.Sanitize()
	rows, err := tx.Query(ctx, `SELECT a.attname, a.atttypid, a.atttypmod,
		coalesce(a.attnum = ANY(i.indkey), false), format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, ident)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", ident, err)
	}
	t := &cdc.Table{Schema: schema, Name: name}
	var types []string
	for rows.Next() {
		var c cdc.Column
		var typ string
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeModifier, &c.Key, &typ); err != nil {
			return nil, nil, err
		}
		t.Columns = append(t.Columns, c)
		types = append(types, typ)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", ident, err)
	}
	if len(t.Columns) == 0 {
		return nil, nil, errors.New("no columns")
	}
	return t, types, nil
}

// readChunk reads the next rows in key order after lastKey (without key
// columns: all rows, in the order given by order, which may be empty), as
// text, and returns them with the last row's key.
func (s *session) readChunk(ctx context.Context, tx pgx.Tx, t *cdc.Table, types []string, keyCols []int, lastKey []string, order string) ([]cdc.Row, []string, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + pgx.Identifier{t.Schema, t.Name}.Sanitize()
	var args []any
	if len(keyCols) > 0 {
		keys, casts := make([]string, len(keyCols)), make([]string, len(keyCols))
		for i, k := range keyCols {
			keys[i] = cols[k]
			casts[i] = fmt.Sprintf("$%d::text::%s", i+1, types[k])
		}
		if lastKey != nil {
			if len(lastKey) != len(keyCols) {
				return nil, nil, fmt.Errorf("the recorded last key has %d columns, the table's key %d", len(lastKey), len(keyCols))
			}
			sql += " WHERE (" + strings.Join(keys, ", ") + ") > (" + strings.Join(casts, ", ") + ")"
			for _, v := range lastKey {
				args = append(args, v)
			}
		}
		sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", strings.Join(keys, ", "), s.c.cfg.SnapshotChunkRows)
	} else {
		sql += order
	}
	rows, err := tx.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out []cdc.Row
	for rows.Next() {
		raw := rows.RawValues()
		row := make(cdc.Row, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = cdc.Datum{Kind: cdc.DatumNull}
			} else {
				row[i] = cdc.Datum{Kind: cdc.DatumText, Text: append([]byte(nil), v...)}
			}
		}
		out = append(out, row)
		if len(keyCols) == 0 && len(out) > s.c.cfg.TxnChangesMax {
			return nil, nil, fmt.Errorf("%w: a table read in one query (no primary key, or the outbox) of more than %d rows", ErrTxnTooLarge, s.c.cfg.TxnChangesMax)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	var last []string
	if len(out) > 0 && len(keyCols) > 0 {
		for _, k := range keyCols {
			last = append(last, string(out[len(out)-1][k].Text))
		}
	}
	return out, last, nil
}

// appendSnapshotRows renders and appends rows as op=r events at the
// positions (startLSN - 1, first...), durable before it returns.
func (s *session) appendSnapshotRows(ctx context.Context, t *cdc.Table, rows []cdc.Row, startLSN uint64, first uint32) error {
	txn := cdc.Txn{CommitLSN: startLSN - 1, CommitTime: s.c.clock.Now(), Snapshot: true, FirstIndex: first}
	for _, r := range rows {
		txn.Changes = append(txn.Changes, cdc.Change{Op: cdc.OpRead, Table: t, After: r, LSN: startLSN})
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	events, err := s.renderer.Events(s.naming, txn, s.c.clock.Now().UnixMilli())
	if err != nil {
		return err
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
	// Snapshot rows are no database transaction: a chunk cut short by a
	// crash is completed from its positions, as before.
	return s.appendAll(ctx, plan, false)
}

// quoteLiteral quotes a snapshot name (digits, letters and dashes) as SQL.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
