// Command shop is a small event-sourced shop on Cairn's event store: an
// order service that appends OrderPlaced with expected revisions, and an
// inventory projection into PostgreSQL that reserves stock or, when an order
// cannot be filled, appends OrderRejected to the order's stream. See README.md.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/aggregate"
	"github.com/cairnlog/cairn/client/projection"
)

const usage = `usage: shop COMMAND [flags]

commands:
  place     --order ID --sku SKU --qty N   place an order (once per order id)
  restock   --sku SKU --qty N              add stock
  inventory --db DSN                       run the inventory projection until Ctrl-C
  stock     --db DSN                       print the inventory read model
  status    --order ID                     print an order's events and status

Every command takes --server (default $CAIRN_SERVER or http://127.0.0.1:8080);
--db defaults to $SHOP_DB.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run executes one command; the tests call it directly.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	server := fs.String("server", envOr("CAIRN_SERVER", "http://127.0.0.1:8080"), "Cairn's event-store API")
	dsn := fs.String("db", os.Getenv("SHOP_DB"), "PostgreSQL DSN of the inventory read model")
	order := fs.String("order", "", "order id")
	sku := fs.String("sku", "", "stock keeping unit")
	qty := fs.Int64("qty", 1, "quantity")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	store, err := client.New(*server)
	if err != nil {
		return err
	}
	defer store.Close()
	switch args[0] {
	case "place":
		return place(ctx, store, out, OrderPlaced{Order: *order, SKU: *sku, Qty: *qty})
	case "restock":
		return restock(ctx, store, out, StockAdded{SKU: *sku, Qty: *qty})
	case "inventory":
		db, err := openDB(*dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		return runInventory(ctx, store, db, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	case "stock":
		db, err := openDB(*dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		return printStock(ctx, db, out)
	case "status":
		return status(ctx, store, out, *order)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func openDB(dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, errors.New("--db (or SHOP_DB) is required: a PostgreSQL DSN such as postgres://postgres@127.0.0.1:5432/shop")
	}
	return sql.Open("pgx", dsn)
}

// place appends OrderPlaced to a new order stream: expecting no stream makes
// placing the same order twice fail instead of ordering twice.
func place(ctx context.Context, store *client.Client, out io.Writer, o OrderPlaced) error {
	if o.Order == "" || o.SKU == "" || o.Qty <= 0 {
		return errors.New("place needs --order, --sku and a positive --qty")
	}
	data, _ := json.Marshal(o)
	res, err := store.Append(ctx, Topic, orderStream(o.Order), client.NoStream, client.EventData{Type: TypeOrderPlaced, Data: data})
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		return fmt.Errorf("order %s was already placed (its stream is at revision %d)", o.Order, wrong.Actual)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "placed order %s: %d × %s (%s revision %d)\n", o.Order, o.Qty, o.SKU, orderStream(o.Order), res.LastRevision)
	return err
}

// restock appends StockAdded through the SKU aggregate, which loads the
// SKU's history and saves with its revision as the expected one, retrying
// when another restock got there first.
func restock(ctx context.Context, store *client.Client, out io.Writer, a StockAdded) error {
	if a.SKU == "" || a.Qty <= 0 {
		return errors.New("restock needs --sku and a positive --qty")
	}
	skus, err := aggregate.NewRepository(store, Topic, func() *Inventory { return &Inventory{} })
	if err != nil {
		return err
	}
	data, _ := json.Marshal(a)
	root, err := skus.Execute(ctx, skuStream(a.SKU), func(*Inventory) ([]client.EventData, error) {
		return []client.EventData{{Type: TypeStockAdded, Data: data}}, nil
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "restocked %s: +%d, %d added in all (revision %d)\n", a.SKU, a.Qty, root.State.Added, root.Revision)
	return err
}

// runInventory runs the projection until ctx ends.
func runInventory(ctx context.Context, store *client.Client, db *sql.DB, logger *slog.Logger) error {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create the read model: %w", err)
	}
	r, err := projection.New(store, db, "inventory", Topic, inventory{store: store}.handle, projection.WithLogger(logger))
	if err != nil {
		return err
	}
	logger.Info("inventory projection running", "topic", Topic)
	return r.Run(ctx)
}

func printStock(ctx context.Context, db *sql.DB, out io.Writer) error {
	rows, err := db.QueryContext(ctx, `SELECT sku, available, reserved FROM stock ORDER BY sku`)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Fprintln(out, "SKU\tAVAILABLE\tRESERVED")
	for rows.Next() {
		var sku string
		var s Stock
		if err := rows.Scan(&sku, &s.Available, &s.Reserved); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\t%d\t%d\n", sku, s.Available, s.Reserved)
	}
	return rows.Err()
}

func status(ctx context.Context, store *client.Client, out io.Writer, order string) error {
	if order == "" {
		return errors.New("status needs --order")
	}
	var events []client.RecordedEvent
	for ev, err := range store.ReadStreamAll(ctx, Topic, orderStream(order)) {
		if err != nil {
			return err
		}
		events = append(events, ev)
		fmt.Fprintf(out, "%d\t%s\t%s\t%s\n", ev.Revision, ev.Time.UTC().Format(time.RFC3339), ev.Type, ev.Data)
	}
	s, err := FoldOrder(events)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "order %s: %s\n", order, s)
	return err
}
