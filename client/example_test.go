package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cairnlog/cairn/client"
)

// A service appends with an expected revision, reads a stream back and
// follows a topic live.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Append(ctx, "orders", "order-42", client.NoStream,
		client.EventData{Type: "OrderPlaced", Data: []byte(`{"sku":"tea","qty":2}`)})
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		log.Printf("order-42 exists already, at revision %d", wrong.Actual)
	} else if err != nil {
		log.Fatal(err)
	}

	for ev, err := range c.ReadStreamAll(ctx, "orders", "order-42") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type, string(ev.Data))
	}

	sub, err := c.Subscribe(ctx, "orders", "", client.WithFilter(client.Filter{EventTypePrefix: "Order"}))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for msg, err := range sub.All() {
		if err != nil {
			log.Printf("subscription ended; resume from %v: %v", sub.Positions(), err)
			return
		}
		if msg.Kind == client.MessageEvent {
			fmt.Println(msg.Event.Stream, msg.Event.Type)
		}
	}
}
