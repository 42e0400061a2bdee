package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cairnlog/cairn/cdc"
)

// ErrSlotLost: the replication slot cannot give the changes after what the
// log holds (dropped, recreated, advanced by something else, or
// invalidated): streaming on would silently skip changes, so the connector
// stops instead.
var ErrSlotLost = errors.New("replication slot lost")

// slotState is a slot as pg_replication_slots shows it.
type slotState struct {
	found     bool
	confirmed uint64 // confirmed_flush_lsn
	walStatus string // "reserved", "extended", "unreserved", "lost"
	plugin    string
	database  string
}

// checkSlot decides whether streaming from the slot loses nothing, given
// the highest position the log holds. The connector confirms a position
// only once the log holds it (changes, or a heartbeat record), so a slot
// confirmed past what the log holds was moved by someone else: recreated
// (its position starts at the WAL's end), or advanced. It returns
// create=true for a new connector (the log holds nothing) without a slot.
func checkSlot(name, database string, s slotState, held cdc.Position) (create bool, err error) {
	switch {
	case s.found && s.database != database:
		// Slot names are shared by the server's databases.
		return false, fmt.Errorf("slot %s belongs to database %s, not %s: name another slot", name, s.database, database)
	case !s.found && held.IsZero():
		return true, nil
	case !s.found:
		return false, fmt.Errorf("%w: slot %s does not exist, but the log holds changes up to %s: it was dropped, and the changes since are gone; delete the connector's topics to start over",
			ErrSlotLost, name, pglogrepl.LSN(held.CommitLSN))
	case s.walStatus == "lost":
		return false, fmt.Errorf("%w: slot %s was invalidated (wal_status=lost): the server removed WAL it had not sent (max_slot_wal_keep_size)", ErrSlotLost, name)
	case s.plugin != "pgoutput":
		return false, fmt.Errorf("slot %s uses the %s plug-in, not pgoutput", name, s.plugin)
	case !held.IsZero() && s.confirmed > held.CommitLSN:
		return false, fmt.Errorf("%w: slot %s is confirmed up to %s, past the last change in the log (%s): it was recreated or advanced outside the connector, and the changes in between are gone",
			ErrSlotLost, name, pglogrepl.LSN(s.confirmed), pglogrepl.LSN(held.CommitLSN))
	}
	return false, nil
}
