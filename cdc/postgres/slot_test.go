package postgres

import (
	"errors"
	"testing"

	"github.com/cairnlog/cairn/cdc"
)

func TestCheckSlot(t *testing.T) {
	held := cdc.Position{CommitLSN: 1000, Index: 2}
	ok := slotState{found: true, confirmed: 900, walStatus: "reserved", plugin: "pgoutput", database: "shop"}
	cases := []struct {
		name   string
		slot   slotState
		held   cdc.Position
		create bool
		lost   bool
		err    bool
	}{
		{name: "new connector, no slot: create", held: cdc.Position{}, create: true},
		{name: "new connector, slot exists: adopt", slot: ok},
		{name: "slot behind the log: resend, skipped", slot: ok, held: held},
		{name: "slot at the log's position", slot: slotState{found: true, confirmed: 1000, plugin: "pgoutput", database: "shop"}, held: held},
		{name: "dropped", held: held, lost: true},
		{name: "recreated (ahead of the log)", slot: slotState{found: true, confirmed: 5000, plugin: "pgoutput", database: "shop"}, held: held, lost: true},
		{name: "invalidated", slot: slotState{found: true, confirmed: 900, walStatus: "lost", plugin: "pgoutput", database: "shop"}, held: held, lost: true},
		{name: "another plug-in", slot: slotState{found: true, plugin: "wal2json", database: "shop"}, err: true},
		{name: "another database", slot: slotState{found: true, plugin: "pgoutput", database: "other"}, err: true},
	}
	for _, c := range cases {
		create, err := checkSlot("s", "shop", c.slot, c.held)
		switch {
		case create != c.create:
			t.Errorf("%s: create %v", c.name, create)
		case c.lost && !errors.Is(err, ErrSlotLost):
			t.Errorf("%s: %v, want ErrSlotLost", c.name, err)
		case c.err && (err == nil || errors.Is(err, ErrSlotLost)):
			t.Errorf("%s: %v, want another error", c.name, err)
		case !c.lost && !c.err && err != nil:
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
