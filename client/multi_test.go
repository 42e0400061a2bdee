package client

import (
	"errors"
	"testing"
)

// TestAppendMulti: the SDK's AppendMulti writes every part at its expected
// revision; a call whose expectations fail gives an *AppendMultiError
// naming each failed part with its stream's actual revision, and writes
// nothing; a retry of a call that succeeded is answered as a duplicate.
func TestAppendMulti(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	parts := []AppendPart{
		{Topic: "orders", Stream: "order-1", Expected: NoStream, Events: []EventData{{ID: "3f1c3f5e-2b7e-4d7c-8f8e-0a0b0c0d0e01", Type: "Placed", Data: []byte(`{}`)}}},
		{Topic: "stock", Stream: "sku-1", Expected: NoStream, Events: events("Reserved", 2)},
	}
	res, err := c.AppendMulti(ctx, parts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].LastRevision != 0 || res[1].LastRevision != 1 {
		t.Fatalf("AppendMulti gave %+v", res)
	}
	_, err = c.AppendMulti(ctx,
		AppendPart{Topic: "orders", Stream: "order-1", Expected: Exact(0), Events: events("Paid", 1)},
		AppendPart{Topic: "stock", Stream: "sku-1", Expected: Exact(0), Events: events("Reserved", 1)})
	var multi *AppendMultiError
	if !errors.As(err, &multi) || !errors.Is(err, ErrWrongExpectedRevision) || len(multi.Mismatches) != 1 {
		t.Fatalf("failed AppendMulti: %v", err)
	}
	if m := multi.Mismatches[0]; m.Part != 1 || m.Topic != "stock" || m.Stream != "sku-1" || m.Actual != 1 {
		t.Fatalf("mismatch %+v, want part 1 stock/sku-1 at 1", m)
	}
	page, err := c.ReadStream(ctx, "orders", "order-1")
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("order-1 after the failed call: %v, %v", page, err)
	}
	res, err = c.AppendMulti(ctx, parts[:1]...)
	if err != nil || !res[0].Duplicate {
		t.Fatalf("retried part: %+v, %v", res, err)
	}
}
