package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnlog/cairn/client"
)

// ErrAlreadyPlaced: an order id was used before; nothing was written.
var ErrAlreadyPlaced = errors.New("already placed")

// place is the order service: it appends OrderPlaced to a new stream.
// Expecting no stream makes a second placement of the same order id fail
// instead of ordering twice, whoever sends it.
func place(ctx context.Context, store *client.Client, out io.Writer, o OrderPlaced) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("place: %w", err)
	}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("place %s: %w", o.OrderID, err)
	}
	res, err := store.Append(ctx, OrdersTopic, o.OrderID, client.NoStream, client.EventData{Type: TypeOrderPlaced, Data: data})
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		return fmt.Errorf("order %s: %w (%s/%s is at revision %d); nothing written, see shop status --order %s",
			o.OrderID, ErrAlreadyPlaced, OrdersTopic, o.OrderID, wrong.Actual, o.OrderID)
	}
	if err != nil {
		return fmt.Errorf("place %s: %w", o.OrderID, err)
	}
	_, err = fmt.Fprintf(out, "placed %s: %d × %s (%s/%s revision %d, offset %s)\n",
		o.OrderID, o.Qty, o.SKU, OrdersTopic, o.OrderID, res.LastRevision, res.Position)
	return err
}

// status prints an order's stream and the status its events fold into.
func status(ctx context.Context, store *client.Client, out io.Writer, orderID string) error {
	if err := validName("order id", orderID); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	var events []client.RecordedEvent
	for ev, err := range store.ReadStreamAll(ctx, OrdersTopic, orderID) {
		if errors.Is(err, client.ErrStreamNotFound) {
			return fmt.Errorf("order %s: never placed (no stream %s/%s)", orderID, OrdersTopic, orderID)
		}
		if err != nil {
			return fmt.Errorf("status of %s: %w", orderID, err)
		}
		events = append(events, ev)
	}
	s, err := FoldOrder(events)
	if err != nil {
		return fmt.Errorf("status of %s: %w", orderID, err)
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "%s/%s\n", OrdersTopic, orderID)
	fmt.Fprintln(w, "REVISION\tTIME\tTYPE\tDATA")
	for _, ev := range events {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", ev.Revision, ev.Time.UTC().Format(time.RFC3339), ev.Type, strings.TrimSpace(string(ev.Data)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "status: %s\n", s)
	return err
}
