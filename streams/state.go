package streams

import (
	"fmt"

	"github.com/cairnlog/cairn/batch"
)

// State is what the index knows of one stream.
type State struct {
	// LastRevision is the revision of the stream's last event, -1 before the first.
	LastRevision int64
	// LastOffset is the offset of the stream's last event, -1 before the first.
	LastOffset  int64
	Metadata    Metadata
	SoftDeleted bool
	HardDeleted bool
}

// NewState is the state of a stream nothing was written to.
func NewState() State {
	return State{LastRevision: -1, LastOffset: -1, Metadata: NoMetadata}
}

// Exists reports whether the stream has an event that was not deleted.
func (s State) Exists() bool {
	return s.LastRevision >= 0 && !s.SoftDeleted && !s.HardDeleted
}

// FirstKept is the lowest revision that max_count, truncate_before and
// deletion leave; max_age is applied per event, by its timestamp.
func (s State) FirstKept() int64 {
	if s.HardDeleted {
		return s.LastRevision + 1
	}
	first := int64(0)
	if s.Metadata.TruncateBefore > first {
		first = s.Metadata.TruncateBefore
	}
	if s.Metadata.MaxCount >= 0 && s.LastRevision+1-s.Metadata.MaxCount > first {
		first = s.LastRevision + 1 - s.Metadata.MaxCount
	}
	return first
}

// Entry is one event's place in the log.
type Entry struct {
	Revision    int64
	Offset      int64
	TimestampMs int64
	ID          string
}

// Expired reports whether max_age hides an event with timestamp tsMs at nowMs.
func (s State) Expired(tsMs, nowMs int64) bool {
	return s.Metadata.MaxAgeMs >= 0 && tsMs < nowMs-s.Metadata.MaxAgeMs
}

// Appended says which revisions an append gave a stream.
type Appended struct {
	Stream      string
	First, Last int64
	FirstOffset int64
	LastOffset  int64
}

// Lookup is the committed index a Change reads.
type Lookup interface {
	State(stream string) (State, error)
	// RevisionOfID returns the revision of the event with id in stream.
	RevisionOfID(stream, id string) (rev int64, found bool, err error)
	// Entry returns the event at rev of stream.
	Entry(stream string, rev int64) (Entry, bool, error)
}

// Change collects what a run of records does to the index: under the
// partition's writer lock it is built record by record (checking each when
// the records come from a producer), then written by Index.Commit once the
// log holds the records.
type Change struct {
	lookup  Lookup
	states  map[string]*State
	order   []string // streams in first-touched order, so commits are deterministic
	entries map[string][]Entry
	ids     map[string]map[string]bool
	next    int64
	first   int64 // offset of the first record added, -1 before any

	appended []Appended
	// moved maps each stream whose state the change moves in a way readers
	// see beyond its last revision (metadata, deletion, creation, revival,
	// or a first kept revision that max_count advances) to the offset of
	// the last record that did so.
	moved map[string]int64
	dup   *DuplicateError
	fresh bool
	// appends marks streams written by an event-store append in this
	// change whose ids must be looked up: a record asked for a revision
	// check that does not rule out a retry, so it and every later record of
	// the stream have their ids checked.
	appends map[string]bool
}

// NewChange starts a change over lookup.
func NewChange(lookup Lookup) *Change {
	return &Change{lookup: lookup, states: map[string]*State{}, entries: map[string][]Entry{}, ids: map[string]map[string]bool{}, first: -1}
}

// Appended lists, per stream in order, the revisions the change's events got.
func (c *Change) Appended() []Appended { return c.appended }

// Moved lists the streams whose state the change moves beyond their last
// revision and offset, each with the offset of the last record that did:
// until that record is durable, a reader must not act on the state.
func (c *Change) Moved() map[string]int64 { return c.moved }

func (c *Change) move(stream string, offset int64) {
	if c.moved == nil {
		c.moved = map[string]int64{}
	}
	c.moved[stream] = offset
}

// Next is the offset after the last record added.
func (c *Change) Next() int64 { return c.next }

// Empty reports whether the change touches no stream.
func (c *Change) Empty() bool { return len(c.order) == 0 }

func (c *Change) state(stream string) (*State, error) {
	if st, ok := c.states[stream]; ok {
		return st, nil
	}
	st, err := c.lookup.State(stream)
	if err != nil {
		return nil, err
	}
	c.states[stream] = &st
	c.order = append(c.order, stream)
	return &st, nil
}

// Check adds a record a producer sent, at offset, after checking it: an
// expected revision it carries, that its stream is not hard-deleted, and
// whether its id makes it a retry. Call Result after the last record.
func (c *Change) Check(r batch.Record, offset int64) error {
	return c.add(r, offset, true)
}

// Apply adds a record read back from the log. It never fails for what the
// record says: the log is the truth, and a record that a check would have
// refused can only predate the topic's stream policy.
func (c *Change) Apply(r batch.Record, offset int64) error {
	return c.add(r, offset, false)
}

// Result is nil when the checked records may be written; a
// *DuplicateError when all of them are a retry of an earlier append.
func (c *Change) Result() error {
	if c.dup == nil {
		return nil
	}
	for _, at := range []struct {
		rev    int64
		offset *int64
	}{{c.dup.First, &c.dup.FirstOffset}, {c.dup.Last, &c.dup.LastOffset}} {
		e, found, err := c.lookup.Entry(c.dup.Stream, at.rev)
		if err != nil {
			return err
		}
		*at.offset = -1
		if found {
			*at.offset = e.Offset
		}
	}
	return c.dup
}

func (c *Change) add(r batch.Record, offset int64, check bool) error {
	c.next = offset + 1
	if c.first < 0 {
		c.first = offset
	}
	kind, op, err := Classify(r)
	if kind == KindNone {
		if _, ok := Header(r, HeaderExpectedRevision); ok && check {
			return fmt.Errorf("%w: a record with %s needs a key (the stream)", ErrInvalid, HeaderExpectedRevision)
		}
		return nil
	}
	stream := string(r.Key)
	if err != nil {
		if check {
			return fmt.Errorf("%w: stream %q: %v", ErrInvalid, stream, err)
		}
		return nil
	}
	st, err := c.state(stream)
	if err != nil {
		return err
	}
	if !check {
		raiseToExpected(r, st)
	}
	if check {
		if kind == KindOp && op.Name == OpCleaned {
			return fmt.Errorf("%w: stream %q: %s=%s records are written by the cleaner only", ErrInvalid, stream, HeaderStreamOp, OpCleaned)
		}
		if dup, err := c.checkRecord(r, stream, st, kind); err != nil || dup {
			return err
		}
	}
	if kind == KindOp {
		c.applyOp(st, op)
		if op.Name != OpCleaned { // a cleaned marker hides nothing the index did not already hide
			c.move(stream, offset)
		}
		return nil
	}
	if st.LastRevision < 0 || st.SoftDeleted || st.Metadata.MaxCount >= 0 {
		c.move(stream, offset)
	}
	st.LastRevision++
	st.LastOffset = offset
	st.SoftDeleted = false
	id := ""
	if v, ok := Header(r, HeaderID); ok {
		id = string(v)
	}
	c.entries[stream] = append(c.entries[stream], Entry{Revision: st.LastRevision, Offset: offset, TimestampMs: r.TimestampMs, ID: id})
	if n := len(c.appended); n > 0 && c.appended[n-1].Stream == stream {
		c.appended[n-1].Last, c.appended[n-1].LastOffset = st.LastRevision, offset
	} else {
		c.appended = append(c.appended, Appended{Stream: stream, First: st.LastRevision, Last: st.LastRevision, FirstOffset: offset, LastOffset: offset})
	}
	return nil
}

// raiseToExpected restores, on replay, the numbering a record's exact
// expected revision proves: the record was checked against its stream at
// that revision. A log whose earlier events of the stream are gone (removed
// while the topic had another policy) so keeps the revisions it had, as
// cleaned markers keep them; the number is only ever raised.
func raiseToExpected(r batch.Record, st *State) {
	raw, ok := Header(r, HeaderExpectedRevision)
	if !ok {
		return
	}
	if e, err := ParseExpected(string(raw)); err == nil && e.Kind == ExpectExact {
		st.LastRevision = max(st.LastRevision, e.Revision)
	}
}

func (c *Change) applyOp(st *State, op Op) {
	switch op.Name {
	case OpMetadata:
		st.Metadata = op.Metadata
	case OpDelete:
		st.SoftDeleted = true
		st.Metadata.TruncateBefore = st.LastRevision + 1
	case OpHardDelete:
		st.HardDeleted = true
	case OpCleaned:
		st.LastRevision = max(st.LastRevision, op.Revision)
	}
}

// checkRecord applies a producer's record's checks. dup is true when the
// record is a retry of an event already in the stream, which is then not added.
func (c *Change) checkRecord(r batch.Record, stream string, st *State, kind Kind) (dup bool, err error) {
	if st.HardDeleted {
		return false, fmt.Errorf("%w: %q", ErrStreamDeleted, stream)
	}
	raw, hasExpected := Header(r, HeaderExpectedRevision)
	var expected Expected
	if hasExpected {
		if expected, err = ParseExpected(string(raw)); err != nil {
			return false, fmt.Errorf("%w: stream %q: %v", ErrInvalid, stream, err)
		}
	}
	if kind == KindEvent {
		id, hasID := Header(r, HeaderID)
		if hasID && c.ids[stream][string(id)] {
			return false, fmt.Errorf("%w: stream %q: event id %s appears twice", ErrInvalid, stream, id)
		}
		// A retry is recognised by the ids of event-store appends (records
		// that asked for a revision check, and the records after them), and
		// only as a whole.
		if hasExpected {
			if c.appends == nil {
				c.appends = map[string]bool{}
			}
			// An exact or no-stream expectation that holds cannot be a
			// retry: had the append happened before, the stream would have
			// moved past the expected revision. Its events need no lookup.
			c.appends[stream] = !(c.dup == nil && expected.holds(*st) &&
				(expected.Kind == ExpectExact || expected.Kind == ExpectNoStream))
		}
		if hasID && (c.appends[stream] || c.dup != nil) {
			rev, found, err := c.lookup.RevisionOfID(stream, string(id))
			if err != nil {
				return false, err
			}
			if found {
				return true, c.addDuplicate(stream, string(id), rev)
			}
		}
		if c.dup != nil {
			return false, fmt.Errorf("%w: stream %q: only some of the events were appended before (event %s is new)", ErrInvalid, stream, id)
		}
		if hasID {
			if c.ids[stream] == nil {
				c.ids[stream] = map[string]bool{}
			}
			c.ids[stream][string(id)] = true
		}
		c.fresh = true
	} else if c.dup != nil {
		return false, fmt.Errorf("%w: stream %q: a retried append cannot carry other operations", ErrInvalid, stream)
	}
	if hasExpected && !expected.holds(*st) {
		actual := st.LastRevision
		return false, &WrongExpectedRevisionError{Stream: stream, Expected: expected, Actual: actual}
	}
	return false, nil
}

// addDuplicate extends the retry being recognised with the event at rev.
func (c *Change) addDuplicate(stream, id string, rev int64) error {
	if c.fresh {
		return fmt.Errorf("%w: stream %q: event %s was appended before, but earlier events of this append are new", ErrInvalid, stream, id)
	}
	if c.dup == nil {
		c.dup = &DuplicateError{Stream: stream, First: rev, Last: rev}
		return nil
	}
	if c.dup.Stream != stream || rev != c.dup.Last+1 {
		return fmt.Errorf("%w: stream %q: event %s was appended before, but not in this order", ErrInvalid, stream, id)
	}
	c.dup.Last = rev
	return nil
}
