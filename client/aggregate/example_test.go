package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/aggregate"
)

// Account is an aggregate: its state folds its events.
type Account struct {
	Balance int64 `json:"balance"`
}

func (a *Account) Apply(ev client.RecordedEvent) error {
	var amount struct{ Amount int64 }
	if err := json.Unmarshal(ev.Data, &amount); err != nil {
		return err
	}
	switch ev.Type {
	case "Deposited":
		a.Balance += amount.Amount
	case "Withdrawn":
		a.Balance -= amount.Amount
	}
	return nil
}

// A command decides on the current state; Execute saves its events, or
// runs it again on the newer state when another writer got there first.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	accounts, err := aggregate.NewRepository(c, "accounts", func() *Account { return &Account{} }, aggregate.SnapshotEvery(100))
	if err != nil {
		log.Fatal(err)
	}
	root, err := accounts.Execute(ctx, "acc-7", func(a *Account) ([]client.EventData, error) {
		if a.Balance < 30 {
			return nil, errors.New("insufficient funds")
		}
		return []client.EventData{{Type: "Withdrawn", Data: []byte(`{"Amount":30}`)}}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("acc-7 holds %d at revision %d", root.State.Balance, root.Revision)
}
