package projection_test

import (
	"context"
	"database/sql"
	"log"
	"os/signal"
	"syscall"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/projection"
)

// A read model of order counts per stream, kept in PostgreSQL: the update
// and the checkpoint commit together.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	r, err := projection.New(c, db, "order-counts", "orders",
		func(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO order_counts (stream, n) VALUES ($1, 1)
				ON CONFLICT (stream) DO UPDATE SET n = order_counts.n + 1`, ev.Stream)
			return err
		},
		projection.WithFilter(client.Filter{EventTypePrefix: "Order"}))
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Run(ctx); err != nil { // returns nil on SIGTERM
		log.Fatal(err)
	}
}
