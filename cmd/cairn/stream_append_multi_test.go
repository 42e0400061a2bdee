package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStreamAppendMulti: cairn stream append-multi writes every part of
// its file at the expected revisions and prints each part's revision; a
// file whose expectations fail writes nothing and names each failed part
// with its stream's revision; the same file with event ids again is a
// retry.
func TestStreamAppendMulti(t *testing.T) {
	url := startEventStore(t)
	s := streamCLI(t, url)
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	reserve := write("reserve.json", `{"parts": [
  {"stream": "shop.orders/order-1", "expected_revision": "no-stream",
   "events": [{"id": "0b4f2a3e-5a55-4f6e-9f1e-4c1d2b3a4f01", "type": "OrderAccepted", "data": {"sku": "tea"}}]},
  {"stream": "shop.inventory/tea", "expected_revision": "any",
   "events": [{"id": "0b4f2a3e-5a55-4f6e-9f1e-4c1d2b3a4f02", "type": "StockReserved", "data": {"qty": 2}},
              {"type": "Note", "data": "reserved by order-1", "content_type": "text/plain"}]}]}`)
	r := s("stream", "append-multi", "--file", reserve)
	if r.err != nil || r.stdout != "shop.orders/order-1 0\nshop.inventory/tea 1\n" {
		t.Fatalf("append-multi: %q %v %s", r.stdout, r.err, r.stderr)
	}
	if read := s("stream", "read", "shop.inventory/tea", "--json"); read.err != nil || !strings.Contains(read.stdout, "reserved by order-1") {
		t.Fatalf("read back: %q %v", read.stdout, read.err)
	}
	stale := write("stale.json", `{"parts": [
  {"stream": "shop.orders/order-1", "expected_revision": 0, "events": [{"type": "OrderShipped", "data": {}}]},
  {"stream": "shop.inventory/tea", "expected_revision": "0", "events": [{"type": "StockReserved", "data": {}}]},
  {"stream": "shop.orders/order-2", "expected_revision": "exists", "events": [{"type": "OrderShipped", "data": {}}]}]}`)
	r = s("stream", "append-multi", "--file", stale)
	want := "nothing written: wrong expected revisions\n" +
		"  part 1: shop.inventory/tea: expected 0, but its revision is 1\n" +
		"  part 2: shop.orders/order-2: expected exists, but the stream has no events"
	if r.err == nil || r.err.Error() != want || r.stdout != "" {
		t.Fatalf("stale append-multi: %v, stdout %q; want %q", r.err, r.stdout, want)
	}
	if read := s("stream", "read", "shop.orders/order-1", "--json"); read.err != nil || len(jsonLines(t, read.stdout)) != 1 {
		t.Fatalf("order-1 after the failed call: %q %v", read.stdout, read.err)
	}
	retry := write("retry.json", `{"parts": [
  {"stream": "shop.orders/order-1", "expected_revision": "no-stream",
   "events": [{"id": "0b4f2a3e-5a55-4f6e-9f1e-4c1d2b3a4f01", "type": "OrderAccepted", "data": {"sku": "tea"}}]}]}`)
	if r := s("stream", "append-multi", "--file", retry); r.err != nil || r.stdout != "shop.orders/order-1 0 (already appended)\n" {
		t.Fatalf("retry: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "append-multi", "--file", write("bad.json", `{"parts": [{"stream": "no-slash", "events": [{"type": "X"}]}]}`)); r.err == nil {
		t.Fatal("a stream without its topic was accepted")
	}
}
