package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5"
)

const usage = `usage: cdc-orders COMMAND [flags]

commands:
  place --order ID --item ITEM --qty N   insert an order and its OrderPlaced event
  ship --order ID                        mark an order shipped, with its OrderShipped event

Every command takes --db DSN (default $ORDERS_DB).
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cdc-orders:", err)
		os.Exit(1)
	}
}

// run executes one command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command\n" + usage)
	}
	fs := flag.NewFlagSet("cdc-orders "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", os.Getenv("ORDERS_DB"), "the orders database (a PostgreSQL URL)")
	order := fs.Int64("order", 0, "the order id")
	item := fs.String("item", "", "what is ordered (place)")
	qty := fs.Int64("qty", 1, "how many (place)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dsn == "" || *order <= 0 {
		return errors.New("--db (or ORDERS_DB) and a positive --order are required\n" + usage)
	}
	var change orderChange
	switch args[0] {
	case "place":
		if *item == "" || *qty <= 0 {
			return errors.New("place needs --item and a positive --qty")
		}
		change = placed(*order, *item, *qty)
	case "ship":
		change = shipped(*order)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
	db, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("connect to the orders database: %w", err)
	}
	defer db.Close(context.Background())
	if err := commit(ctx, db, change); err != nil {
		return fmt.Errorf("%s order %d: %w", args[0], *order, err)
	}
	fmt.Fprintf(stdout, "order %d: %s\n", *order, change.eventType)
	return nil
}

// orderChange is one command's effect: a statement on the orders table and
// the event the outbox publishes for it.
type orderChange struct {
	order     int64
	sql       string // on the orders table; must touch exactly one row
	args      []any
	eventType string
	payload   map[string]any
}

func placed(order int64, item string, qty int64) orderChange {
	return orderChange{order: order,
		sql:       `INSERT INTO orders (id, item, qty, status) VALUES ($1, $2, $3, 'placed')`,
		args:      []any{order, item, qty},
		eventType: "OrderPlaced", payload: map[string]any{"item": item, "qty": qty}}
}

func shipped(order int64) orderChange {
	return orderChange{order: order,
		sql:       `UPDATE orders SET status = 'shipped' WHERE id = $1 AND status = 'placed'`,
		args:      []any{order},
		eventType: "OrderShipped", payload: map[string]any{}}
}

// commit writes the order and its outbox row in one transaction: the
// connector publishes the event only if the order's change committed.
func commit(ctx context.Context, db *pgx.Conn, c orderChange) error {
	payload, err := json.Marshal(c.payload)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, c.sql, c.args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("no such order in a state that allows it")
		}
		_, err = tx.Exec(ctx, `INSERT INTO outbox (aggregatetype, aggregateid, type, payload) VALUES ('order', $1, $2, $3)`,
			fmt.Sprint(c.order), c.eventType, payload)
		return err
	})
}
