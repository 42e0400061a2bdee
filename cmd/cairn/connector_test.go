package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/connectors"
)

// The connector commands send the API the definition their flags describe
// and print its answers; an error answer is the command's error.
func TestConnectorCommandsSpeakTheAPI(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var created connectors.Definition
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.Path)
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/connectors":
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &created)
			_ = json.NewEncoder(w).Encode(connectors.Info{Definition: created, State: "starting"})
		case r.Method == "GET" && r.URL.Path == "/v1/connectors/shop":
			_ = json.NewEncoder(w).Encode(connectors.Info{Definition: connectors.Definition{Name: "shop", Type: "postgres", DSN: "postgres://u:xxxxx@h/db"}, State: "streaming",
				Metrics: connectors.Metrics{ConfirmedLSN: "0/16B3748", SlotLagBytes: 42, Events: 7}})
		case r.Method == "GET" && r.URL.Path == "/v1/connectors":
			_ = json.NewEncoder(w).Encode([]connectors.Info{{Definition: connectors.Definition{Name: "shop", Type: "postgres"}, State: "paused", Metrics: connectors.Metrics{Events: 3}}})
		case r.URL.Path == "/v1/connectors/nope":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"no such connector: nope"}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	server := "--server=" + srv.URL

	out := mustCairn(t, "connector", "create", "postgres", "shop", server, "--dsn", "postgres://h/db", "--tables", "public.orders,outbox", "--topic-prefix", "s", "--partitions", "3").stdout
	if out != "created connector shop (starting)\n" {
		t.Errorf("create printed %q", out)
	}
	if created.Name != "shop" || created.Type != "postgres" || created.DSN != "postgres://h/db" || strings.Join(created.Tables, " ") != "public.orders outbox" ||
		created.TopicPrefix != "s" || created.Partitions != 3 || created.HeartbeatIntervalMs != 10000 {
		t.Errorf("create sent %+v", created)
	}
	if out := mustCairn(t, "connector", "status", "shop", server).stdout; !strings.Contains(out, "state: streaming\n") || !strings.Contains(out, "slot lag: 42 bytes\n") || !strings.Contains(out, "confirmed lsn: 0/16B3748\n") {
		t.Errorf("status printed %q", out)
	}
	if out := mustCairn(t, "connector", "list", server).stdout; out != "shop\tpostgres\tpaused\t3\t0\n" {
		t.Errorf("list printed %q", out)
	}
	mustCairn(t, "connector", "pause", "shop", server)
	mustCairn(t, "connector", "resume", "shop", server)
	mustCairn(t, "connector", "delete", "shop", server)
	if res := cairn(t, "connector", "status", "nope", server); res.err == nil || !strings.Contains(res.err.Error(), "no such connector: nope") {
		t.Errorf("status of a missing connector: %v", res.err)
	}
	if res := cairn(t, "connector", "create", "mysql", "x", server, "--dsn", "d"); res.err == nil {
		t.Error("a mysql connector was accepted")
	}
	want := "POST /v1/connectors,GET /v1/connectors/shop,GET /v1/connectors,POST /v1/connectors/shop/pause,POST /v1/connectors/shop/resume,DELETE /v1/connectors/shop,GET /v1/connectors/nope"
	if strings.Join(got, ",") != want {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
}

// create --wait polls the connector until it streams, printing each new
// state and the snapshot's progress; a connector that fails is the
// command's error.
func TestConnectorCreateWaitsUntilStreaming(t *testing.T) {
	for _, tc := range []struct {
		states  []connectors.Info
		wantErr string
		want    string
	}{{
		states: []connectors.Info{{State: "starting"}, {State: "starting"},
			{State: "snapshot", Metrics: connectors.Metrics{SnapshotTables: 2}},
			{State: "snapshot", Metrics: connectors.Metrics{SnapshotTables: 2, SnapshotTablesDone: 1, SnapshotRows: 10}},
			{State: "streaming"}},
		want: "connector shop: starting\nconnector shop: snapshot: 0 of 2 tables, 0 rows\nconnector shop: snapshot: 1 of 2 tables, 10 rows\nconnector shop: streaming\n",
	}, {
		states:  []connectors.Info{{State: "starting"}, {State: "failed", Error: "wal_level is replica"}},
		wantErr: "connector shop failed: wal_level is replica",
		want:    "connector shop: starting\nconnector shop: failed (wal_level is replica)\n",
	}} {
		var mu sync.Mutex
		calls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			info := tc.states[min(calls, len(tc.states)-1)]
			calls++
			_ = json.NewEncoder(w).Encode(info)
		}))
		res := cairn(t, "connector", "create", "postgres", "shop", "--server="+srv.URL, "--dsn", "postgres://h/db", "--wait", "1m")
		srv.Close()
		if (res.err == nil) != (tc.wantErr == "") || (res.err != nil && res.err.Error() != tc.wantErr) {
			t.Errorf("create --wait: %v, want %q", res.err, tc.wantErr)
		}
		if res.stderr != tc.want {
			t.Errorf("create --wait printed\n%s\nwant\n%s", res.stderr, tc.want)
		}
		if calls != len(tc.states) {
			t.Errorf("%d calls, want %d", calls, len(tc.states))
		}
	}
}
