package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/cairnlog/cairn/client"
)

const usage = `usage: shop COMMAND [flags]

commands:
  place --order ID --sku SKU --qty N   place an order (once per order id)
  restock --sku SKU --qty N            add stock to a SKU
  inventory --db DSN                   run the inventory projection until Ctrl-C
  stock --db DSN                       print the inventory read model
  status --order ID                    print an order's events and status

Every command takes --server URL (default $CAIRN_SERVER, else
http://127.0.0.1:8080); --db defaults to $SHOP_DB.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

// run executes one command line; the tests call it as the binary would.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command\n" + usage)
	}
	name := args[0]
	fs := flag.NewFlagSet("shop "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("CAIRN_SERVER", "http://127.0.0.1:8080"), "Cairn's event-store API (cairn serve --http-addr) as a URL")
	var (
		orderID, sku, dsn *string
		qty               *int64
	)
	switch name {
	case "place":
		orderID, sku, qty = orderFlag(fs), skuFlag(fs), qtyFlag(fs)
	case "restock":
		sku, qty = skuFlag(fs), qtyFlag(fs)
	case "inventory", "stock":
		dsn = fs.String("db", os.Getenv("SHOP_DB"), "PostgreSQL DSN of the read model, e.g. postgres://shop:shop@127.0.0.1:5432/shop")
	case "status":
		orderID = orderFlag(fs)
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", name, usage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	store, err := client.New(*server)
	if err != nil {
		return err
	}
	defer store.Close()
	switch name {
	case "place":
		return place(ctx, store, stdout, OrderPlaced{OrderID: *orderID, SKU: *sku, Qty: *qty})
	case "restock":
		return restock(ctx, store, stdout, *sku, *qty)
	case "status":
		return status(ctx, store, stdout, *orderID)
	}
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if name == "stock" {
		return printReadModel(ctx, db, stdout)
	}
	inv, err := newInventory(ctx, store, db, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	return inv.Run(ctx)
}

func orderFlag(fs *flag.FlagSet) *string { return fs.String("order", "", "order id, e.g. order-1") }
func skuFlag(fs *flag.FlagSet) *string   { return fs.String("sku", "", "stock keeping unit, e.g. tea") }
func qtyFlag(fs *flag.FlagSet) *int64 {
	return fs.Int64("qty", 1, fmt.Sprintf("quantity, 1 to %d", QtyMax))
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, errors.New("--db (or SHOP_DB) is required: a PostgreSQL DSN such as postgres://shop:shop@127.0.0.1:5432/shop")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("--db: connect to PostgreSQL: %w", err)
	}
	return db, nil
}
