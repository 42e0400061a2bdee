package projection

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cairnlog/cairn/client"
)

// Dialect is the SQL flavour of the checkpoint statements.
type Dialect int

const (
	// DialectAuto takes the dialect from the database's driver.
	DialectAuto Dialect = iota
	// Postgres numbers its placeholders: $1, $2.
	Postgres
	// SQLite marks them with ?.
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return "auto"
}

// DetectDialect names the dialect of db's driver from the driver's Go
// package: pgx and lib/pq are Postgres, any package with sqlite in its path
// is SQLite.
func DetectDialect(db *sql.DB) (Dialect, error) {
	t := reflect.TypeOf(db.Driver())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	path := t.PkgPath()
	switch {
	case strings.Contains(path, "jackc/pgx"), strings.Contains(path, "lib/pq"):
		return Postgres, nil
	case strings.Contains(path, "sqlite"):
		return SQLite, nil
	}
	return DialectAuto, fmt.Errorf("projection: cannot tell the SQL dialect of driver %s.%s; pass WithDialect", path, t.Name())
}

// bind turns the ? placeholders of query into the dialect's.
func (d Dialect) bind(query string) string {
	if d != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The checkpoint table and statements. The upsert's WHERE makes it move a
// checkpoint forwards only, and tells by its row count whether it did.
const (
	createCheckpointsSQL = `CREATE TABLE IF NOT EXISTS cairn_projection_checkpoints (
	projection TEXT NOT NULL,
	partition INTEGER NOT NULL,
	next_offset BIGINT NOT NULL,
	PRIMARY KEY (projection, partition)
)`
	loadCheckpointsSQL   = `SELECT partition, next_offset FROM cairn_projection_checkpoints WHERE projection = ? ORDER BY partition`
	advanceCheckpointSQL = `INSERT INTO cairn_projection_checkpoints (projection, partition, next_offset) VALUES (?, ?, ?)
ON CONFLICT (projection, partition) DO UPDATE SET next_offset = excluded.next_offset
WHERE cairn_projection_checkpoints.next_offset < excluded.next_offset`
)

// checkpoints reads and writes one projection's rows.
type checkpoints struct {
	dialect    Dialect
	projection string
}

func (c checkpoints) create(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, createCheckpointsSQL)
	if err != nil {
		// Two runners starting together on PostgreSQL: CREATE TABLE IF NOT
		// EXISTS is not atomic there, and the loser fails on the catalog's
		// unique index although the table is there when it looks again.
		_, err = db.ExecContext(ctx, createCheckpointsSQL)
	}
	if err != nil {
		return fmt.Errorf("create checkpoint table: %w", err)
	}
	return nil
}

func (c checkpoints) load(ctx context.Context, db *sql.DB) ([]client.Position, error) {
	rows, err := db.QueryContext(ctx, c.dialect.bind(loadCheckpointsSQL), c.projection)
	if err != nil {
		return nil, fmt.Errorf("load checkpoints of %s: %w", c.projection, err)
	}
	defer rows.Close()
	var out []client.Position
	for rows.Next() {
		var p client.Position
		if err := rows.Scan(&p.Partition, &p.Offset); err != nil {
			return nil, fmt.Errorf("load checkpoints of %s: %w", c.projection, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load checkpoints of %s: %w", c.projection, err)
	}
	return out, nil
}

// advance moves the partition's checkpoint to next inside tx, unless it is
// there or past it already; moved says which.
func (c checkpoints) advance(ctx context.Context, tx *sql.Tx, p client.Position) (moved bool, err error) {
	res, err := tx.ExecContext(ctx, c.dialect.bind(advanceCheckpointSQL), c.projection, p.Partition, p.Offset)
	if err != nil {
		return false, fmt.Errorf("advance checkpoint of %s to %s: %w", c.projection, p, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advance checkpoint of %s to %s: %w", c.projection, p, err)
	}
	return n > 0, nil
}
