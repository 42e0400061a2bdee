package streams

import (
	"errors"
	"fmt"
	"slices"
)

// ErrStreamBusy: an open transaction holds the stream, so nothing else may
// write it until that transaction's marker. The caller may retry: the
// outcome of the transaction decides the stream's revision.
var ErrStreamBusy = errors.New("stream is held by an open transaction")

// Pending holds the stream changes of the transactions open on one
// partition, per producer, until their markers: a transaction's events get
// their revisions when written (they are fixed by the batch's offsets and
// the stream's last revision), but the committed index learns them only at
// the COMMIT marker (End, then Index.Commit), and an ABORT marker drops
// them. While a transaction holds a stream, every other write to it is
// refused with ErrStreamBusy, so the revisions it holds stay the next ones.
// The same calls replay the log (Apply instead of Check), so the index
// stays a function of the log.
//
// Pending is not safe for concurrent use: the partition's writer owns it.
type Pending struct {
	held   map[int64]*Change // producer id → its transaction's change
	holder map[string]int64  // stream → producer id holding it
}

// NewPending returns an empty table.
func NewPending() *Pending {
	return &Pending{held: map[int64]*Change{}, holder: map[string]int64{}}
}

// Begin starts the change of one batch of producer producerID (-1: a batch
// outside any transaction) over lookup, the committed index, and what the
// producer's transaction already holds. Add its records with Check or
// Apply, then call Admit before the write and Hold after it; a change
// dropped before Hold leaves the table as it was.
func (p *Pending) Begin(lookup Lookup, producerID int64) *Change {
	if held, ok := p.held[producerID]; ok && producerID >= 0 {
		held.lookup = lookup // the committed index may have moved since
		return NewChange(held)
	}
	return NewChange(lookup)
}

// Admit refuses c, a change of producerID (-1 outside a transaction), when
// it touches a stream another transaction holds.
func (p *Pending) Admit(c *Change, producerID int64) error {
	for _, stream := range c.order {
		if holder, ok := p.holder[stream]; ok && holder != producerID {
			return fmt.Errorf("%w: stream %q by producer %d", ErrStreamBusy, stream, holder)
		}
	}
	return nil
}

// Hold adds c, a change Begin started for producerID's transaction, to what
// the transaction holds, once the log has its records.
func (p *Pending) Hold(producerID int64, c *Change) {
	if c.Empty() {
		return
	}
	held, ok := p.held[producerID]
	if !ok {
		p.held[producerID] = c
		for _, stream := range c.order {
			p.holder[stream] = producerID
		}
		return
	}
	held.merge(c)
	for _, stream := range c.order {
		p.holder[stream] = producerID
	}
}

// End releases what producerID's transaction holds and returns it: at a
// COMMIT marker the caller commits it to the index; at an ABORT marker it
// is dropped. nil when the producer holds nothing.
func (p *Pending) End(producerID int64) *Change {
	held, ok := p.held[producerID]
	if !ok {
		return nil
	}
	delete(p.held, producerID)
	for _, stream := range held.order {
		delete(p.holder, stream)
	}
	return held
}

// First is the offset of the first record of the oldest transaction
// holding something, -1 when none: a replay of the log into the index must
// start there to hold again what the open transactions wrote.
func (p *Pending) First() int64 {
	first := int64(-1)
	for _, c := range p.held {
		if c.first >= 0 && (first < 0 || c.first < first) {
			first = c.first
		}
	}
	return first
}

// Streams is how many streams open transactions hold.
func (p *Pending) Streams() int { return len(p.holder) }

// Holder returns the producer whose open transaction holds stream.
func (p *Pending) Holder(stream string) (int64, bool) {
	id, ok := p.holder[stream]
	return id, ok
}

// StreamsOf lists the streams producerID's open transaction holds, in the
// order it first wrote them.
func (p *Pending) StreamsOf(producerID int64) []string {
	held, ok := p.held[producerID]
	if !ok {
		return nil
	}
	return slices.Clone(held.order)
}

// Producers lists the producers holding something, in order.
func (p *Pending) Producers() []int64 {
	ids := make([]int64, 0, len(p.held))
	for id := range p.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// State implements Lookup over the change: a stream it touched has the
// state it leaves, others the lookup's.
func (c *Change) State(stream string) (State, error) {
	if st, ok := c.states[stream]; ok {
		return *st, nil
	}
	return c.lookup.State(stream)
}

// RevisionOfID implements Lookup over the change.
func (c *Change) RevisionOfID(stream, id string) (int64, bool, error) {
	for _, e := range c.entries[stream] {
		if e.ID == id {
			return e.Revision, true, nil
		}
	}
	return c.lookup.RevisionOfID(stream, id)
}

// Entry implements Lookup over the change.
func (c *Change) Entry(stream string, rev int64) (Entry, bool, error) {
	for _, e := range c.entries[stream] {
		if e.Revision == rev {
			return e, true, nil
		}
	}
	return c.lookup.Entry(stream, rev)
}

// merge adds d, a change made over c (Begin), to c: d's states are the
// later ones.
func (c *Change) merge(d *Change) {
	for _, stream := range d.order {
		if _, ok := c.states[stream]; !ok {
			c.order = append(c.order, stream)
		}
		st := *d.states[stream]
		c.states[stream] = &st
		c.entries[stream] = append(c.entries[stream], d.entries[stream]...)
	}
	for stream, offset := range d.moved {
		c.move(stream, offset)
	}
	c.appended = append(c.appended, d.appended...)
	c.next = max(c.next, d.next)
	if c.first < 0 {
		c.first = d.first
	}
}
