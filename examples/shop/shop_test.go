package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/pgtest"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

var pg pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		stock   Stock
		qty     int64
		reserve bool
	}{
		{Stock{Available: 3}, 3, true},
		{Stock{Available: 3}, 4, false},
		{Stock{}, 1, false},
		{Stock{Available: 5}, 0, false},
	} {
		d := Decide(tc.stock, OrderPlaced{Order: "o", SKU: "tea", Qty: tc.qty})
		if d.Reserve != tc.reserve || (!d.Reserve && d.Reason == "") {
			t.Errorf("stock %+v qty %d: %+v", tc.stock, tc.qty, d)
		}
	}
}

func TestFoldOrder(t *testing.T) {
	s, err := FoldOrder([]client.RecordedEvent{
		{Type: TypeOrderPlaced, Data: []byte(`{"order":"1","sku":"tea","qty":2}`)},
		{Type: TypeOrderRejected, Data: []byte(`{"order":"1","reason":"out of tea"}`)},
	})
	if err != nil || s.String() != "rejected: out of tea" || s.Placed.Qty != 2 {
		t.Fatalf("%v %v", s, err)
	}
	if rejectionID("a") != rejectionID("a") || rejectionID("a") == rejectionID("b") {
		t.Fatal("rejection ids are not derived from the order event")
	}
}

// shop runs one shop command against url and returns its output.
func shop(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, append(args, "--server", url), &out)
	return out.String(), err
}

// TestShop: restock, orders that fit and one that does not; the inventory
// projection reserves, rejects with an event on the order's stream, and
// survives being stopped and started again without applying anything twice.
func TestShop(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.HTTPAddr()
	db, err := sql.Open("pgx", pg.CreateDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	startProjection := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runInventory(ctx, store, db, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projection: %v", err)
			}
		}
	}
	if out, err := shop(t, url, "restock", "--sku", "tea", "--qty", "3"); err != nil || !strings.Contains(out, "3 added in all") {
		t.Fatalf("restock: %q %v", out, err)
	}
	stop := startProjection()
	for _, id := range []string{"1", "2"} {
		if _, err := shop(t, url, "place", "--order", id, "--sku", "tea", "--qty", "1"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, db, `SELECT count(*) FROM orders`, 2)
	stop() // the projection stops; orders keep coming
	for _, o := range []struct{ id, qty string }{{"3", "1"}, {"4", "2"}} {
		if _, err := shop(t, url, "place", "--order", o.id, "--sku", "tea", "--qty", o.qty); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shop(t, url, "place", "--order", "4", "--sku", "tea", "--qty", "1"); err == nil || !strings.Contains(err.Error(), "already placed") {
		t.Fatalf("placing order 4 twice: %v", err)
	}
	stop = startProjection()
	defer stop()
	waitFor(t, db, `SELECT count(*) FROM orders`, 4)

	var available, reserved int64
	if err := db.QueryRow(`SELECT available, reserved FROM stock WHERE sku = 'tea'`).Scan(&available, &reserved); err != nil || available != 0 || reserved != 3 {
		t.Fatalf("stock: available %d reserved %d (%v)", available, reserved, err)
	}
	var rejected string
	if err := db.QueryRow(`SELECT order_id FROM orders WHERE status = 'rejected'`).Scan(&rejected); err != nil || rejected != "4" {
		t.Fatalf("rejected order %q (%v)", rejected, err)
	}
	out, err := shop(t, url, "status", "--order", "4")
	if err != nil || !strings.Contains(out, "OrderPlaced") || !strings.Contains(out, "OrderRejected") || !strings.Contains(out, "rejected: only 0 of tea available, 2 ordered") {
		t.Fatalf("status of order 4: %q %v", out, err)
	}
	if strings.Count(out, "OrderRejected") != 1 {
		t.Fatalf("order 4 was rejected more than once:\n%s", out)
	}
	if out, _ := shop(t, url, "status", "--order", "1"); !strings.Contains(out, "placed: 1 × tea") {
		t.Fatalf("status of order 1: %q", out)
	}
}

func waitFor(t *testing.T, db *sql.DB, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		if err := db.QueryRow(query).Scan(&got); err == nil && got == want {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d (%v)", query, got, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
