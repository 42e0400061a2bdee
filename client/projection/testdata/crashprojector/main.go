// Command crashprojector runs one projection that counts, per event id, how
// often the event was applied. TestCrashRecovery builds it, kills it with
// SIGKILL at random moments and checks that every count is exactly 1.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/projection"
)

func main() {
	serverURL := flag.String("server", "", "Cairn HTTP address, http://host:port")
	driver := flag.String("driver", "", "database/sql driver: sqlite or pgx")
	dsn := flag.String("dsn", "", "database to project into")
	topic := flag.String("topic", "", "topic to project")
	name := flag.String("name", "crash-counts", "projection name")
	delayMax := flag.Duration("delay-max", time.Millisecond, "longest pause inside each event's transaction, widening the window a kill can hit")
	flag.Parse()
	if err := run(*serverURL, *driver, *dsn, *topic, *name, *delayMax); err != nil {
		fmt.Fprintln(os.Stderr, "crashprojector:", err)
		os.Exit(1)
	}
}

func run(serverURL, driver, dsn, topic, name string, delayMax time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, times INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create read model: %w", err)
	}
	dialect, err := projection.DetectDialect(db)
	if err != nil {
		return err
	}
	count := `INSERT INTO applied (event_id, stream, times) VALUES (?, ?, 1) ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1`
	if dialect == projection.Postgres {
		count = `INSERT INTO applied (event_id, stream, times) VALUES ($1, $2, 1) ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1`
	}
	c, err := client.New(serverURL)
	if err != nil {
		return err
	}
	defer c.Close()
	handler := func(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
		if _, err := tx.ExecContext(ctx, count, ev.ID, ev.Stream); err != nil {
			return err
		}
		if delayMax > 0 {
			time.Sleep(rand.N(delayMax))
		}
		return nil
	}
	r, err := projection.New(c, db, name, topic, handler,
		projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		projection.ReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		return err
	}
	// The test waits for this line before it relies on SIGTERM being caught.
	fmt.Println("ready")
	return r.Run(ctx)
}
