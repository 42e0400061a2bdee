package connectors_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/connectors"
	"github.com/cairnlog/cairn/storage/vfs"
)

// The outbox router inside cairn serve: a service's order and its outbox
// row, written in one database transaction, give one event in stream
// order/<id>, read back with the event-store client.
func TestOutboxEventsAsStreams(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY, total int);
		CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, vfs.NewMem())
	defer s.Close()
	api := "http://" + s.HTTPAddr() + connectors.PathPrefix
	slot := "cairn_shop_" + strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable")
	def := connectors.Definition{Name: "shop", Type: "postgres", DSN: dsn, Slot: slot,
		Outbox: &connectors.OutboxDefinition{Table: "public.outbox", Topic: "shop-events"}}
	if code := call(t, "POST", api, def, nil); code != http.StatusOK {
		t.Fatalf("create: %d", code)
	}
	waitState(t, api+"/shop", "streaming")
	for i, typ := range []string{"OrderPlaced", "OrderPaid"} {
		id := []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"}[i]
		tx, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO orders VALUES ($1, 30) ON CONFLICT (id) DO NOTHING`, []any{7}},
			{`INSERT INTO outbox VALUES ($1, 'order', '7', $2, '{"total": 30}')`, []any{id, typ}},
			{`DELETE FROM outbox`, nil},
		} {
			if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New("http://" + s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var page *client.StreamPage
	for i := 0; i < 300; i++ {
		page, err = c.ReadStream(ctx, "shop-events", "order/7")
		if err == nil && len(page.Events) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("stream order/7: %v %+v", err, page)
	}
	for i, typ := range []string{"OrderPlaced", "OrderPaid"} {
		e := page.Events[i]
		if e.Type != typ || e.Revision != uint64(i) || string(e.Data) != `{"total": 30}` {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if page.Events[0].ID != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
		t.Fatalf("event id %s: the outbox row's", page.Events[0].ID)
	}
}
