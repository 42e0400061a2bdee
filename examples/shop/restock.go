package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/aggregate"
)

// restock appends StockAdded to the SKU's stream through the aggregate
// repository: Execute loads the SKU (its events folded into a SKU), decides
// on that state, and saves expecting the revision it loaded; when another
// restock of the same SKU got in between, it loads again and decides anew.
func restock(ctx context.Context, store *client.Client, out io.Writer, sku string, qty int64) error {
	skus, err := aggregate.NewRepository(store, InventoryTopic, func() *SKU { return &SKU{} })
	if err != nil {
		return fmt.Errorf("restock: %w", err)
	}
	root, err := skus.Execute(ctx, SKUStream(sku), func(s *SKU) ([]client.EventData, error) {
		added, err := s.Restock(sku, qty)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(added)
		if err != nil {
			return nil, err
		}
		return []client.EventData{{Type: TypeStockAdded, Data: data}}, nil
	})
	if err != nil {
		return fmt.Errorf("restock %s: %w", sku, err)
	}
	_, err = fmt.Fprintf(out, "restocked %s: +%d, %d added in %d restocks (%s/%s revision %d)\n",
		sku, qty, root.State.Added, root.State.Restocks, InventoryTopic, SKUStream(sku), root.Revision)
	return err
}
