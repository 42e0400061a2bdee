package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/internal/backoff"
)

// Aggregate is an entity's state. Apply folds one of its events into it;
// an error means the stream holds an event the state cannot take, which
// stops the load. Implementations are pointers, so Apply can change them.
type Aggregate interface {
	Apply(event client.RecordedEvent) error
}

// Snapshot event attributes, part of the format of "<topic>.snapshots".
const (
	// SnapshotEventType is the type of snapshot events.
	SnapshotEventType = "cairn.snapshot"
	// MetadataSnapshotRevision names the last revision of the aggregate's
	// stream that the snapshot's state includes.
	MetadataSnapshotRevision = "snapshot-revision"
	// MetadataSnapshotSchema is the repository's snapshot schema; a
	// snapshot of another schema is ignored (the state is replayed).
	MetadataSnapshotSchema = "snapshot-schema"
	// SnapshotTopicSuffix makes the companion topic's name.
	SnapshotTopicSuffix = ".snapshots"
)

// Defaults of the options.
const (
	DefaultExecuteAttempts = 16
	DefaultBackoffInitial  = 5 * time.Millisecond
	DefaultBackoffMax      = 250 * time.Millisecond
	DefaultSnapshotSchema  = "1"
)

type options struct {
	snapshotEvery   int64
	schema          string
	encode          func(any) ([]byte, error)
	decode          func([]byte, any) error
	attempts        int
	backoff         backoff.Policy
	onSnapshotError func(id string, err error)
}

// Option configures a Repository.
type Option func(*options)

// SnapshotEvery writes a snapshot when a save leaves n or more events after
// the last one; 0 (the default) never snapshots.
func SnapshotEvery(n int) Option { return func(o *options) { o.snapshotEvery = int64(n) } }

// SnapshotSchema names the shape of the state in snapshots. Change it when
// the state's encoding changes: older snapshots are then ignored.
func SnapshotSchema(schema string) Option { return func(o *options) { o.schema = schema } }

// SnapshotCodec replaces JSON as the snapshot encoding. decode gets a
// pointer to the state variable (of type *A).
func SnapshotCodec(encode func(any) ([]byte, error), decode func([]byte, any) error) Option {
	return func(o *options) { o.encode, o.decode = encode, decode }
}

// ExecuteRetries bounds Execute's attempts and the jittered pause between
// them, which doubles from initial up to max.
func ExecuteRetries(attempts int, initial, max time.Duration) Option {
	return func(o *options) {
		o.attempts = attempts
		o.backoff = backoff.Policy{Initial: initial, Max: max}
	}
}

// OnSnapshotError is called when writing a snapshot fails. The save it
// followed has succeeded; the cost is a longer replay on the next load.
// The default ignores the failure.
func OnSnapshotError(f func(id string, err error)) Option {
	return func(o *options) { o.onSnapshotError = f }
}

// Repository loads and saves aggregates of one kind, kept in topic, one
// stream per aggregate id.
type Repository[A Aggregate] struct {
	client        *client.Client
	topic         string
	snapshotTopic string
	newState      func() A
	opts          options
}

// NewRepository returns the repository of aggregates in topic; newState
// makes the state of an aggregate with no events.
func NewRepository[A Aggregate](c *client.Client, topic string, newState func() A, opts ...Option) (*Repository[A], error) {
	o := options{
		schema:   DefaultSnapshotSchema,
		encode:   json.Marshal,
		decode:   json.Unmarshal,
		attempts: DefaultExecuteAttempts,
		backoff:  backoff.Policy{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case c == nil || newState == nil:
		return nil, errors.New("aggregate repository: needs a client and a newState function")
	case topic == "":
		return nil, errors.New("aggregate repository: empty topic")
	case o.snapshotEvery < 0:
		return nil, fmt.Errorf("aggregate repository: snapshot every %d events", o.snapshotEvery)
	case o.attempts < 1:
		return nil, fmt.Errorf("aggregate repository: %d execute attempts: at least 1", o.attempts)
	case o.encode == nil || o.decode == nil:
		return nil, errors.New("aggregate repository: snapshot codec needs both functions")
	}
	return &Repository[A]{client: c, topic: topic, snapshotTopic: topic + SnapshotTopicSuffix, newState: newState, opts: o}, nil
}

// Topic is where the aggregates' streams are.
func (r *Repository[A]) Topic() string { return r.topic }

// SnapshotTopic is the companion topic of their snapshots.
func (r *Repository[A]) SnapshotTopic() string { return r.snapshotTopic }

// Root is a loaded aggregate: its state and the revision that state is at.
type Root[A Aggregate] struct {
	ID    string
	State A
	// Revision is the revision of the last event in the state, -1 when
	// there is none. Save expects the stream to still end there. (A
	// soft-deleted stream has revisions but no visible event: NoStream,
	// which Save expects for -1, holds for it.)
	Revision int64
	// SnapshotRevision is the revision covered by the newest snapshot the
	// root knows of (loaded or written), -1 for none.
	SnapshotRevision int64
	// Replayed counts the events Load applied after the snapshot.
	Replayed int
	// LastAppend is the result of the root's last Save.
	LastAppend client.AppendResult

	// snapshotStreamRevision is the snapshot stream's last revision, -1
	// for none: a snapshot is appended expecting it, so of two writers
	// racing, the one with the older state loses.
	snapshotStreamRevision int64
	// broken is set when events were saved but could not be applied: the
	// state no longer matches Revision.
	broken error
}

// Load returns the aggregate id: its newest usable snapshot with the events
// after it applied, or its whole stream replayed. An aggregate with no
// events has newState's state and Revision -1.
func (r *Repository[A]) Load(ctx context.Context, id string) (*Root[A], error) {
	root := &Root[A]{ID: id, State: r.newState(), Revision: -1, SnapshotRevision: -1, snapshotStreamRevision: -1}
	if err := r.loadSnapshot(ctx, root); err != nil {
		return nil, err
	}
	var opts []client.ReadOption
	if root.SnapshotRevision >= 0 {
		opts = append(opts, client.FromRevision(uint64(root.SnapshotRevision)+1))
	}
	for page, err := range r.client.ReadStreamPages(ctx, r.topic, id, opts...) {
		if errors.Is(err, client.ErrStreamNotFound) && root.SnapshotRevision < 0 {
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load aggregate %s/%s: %w", r.topic, id, err)
		}
		for _, ev := range page.Events {
			if err := root.State.Apply(ev); err != nil {
				return nil, fmt.Errorf("load aggregate %s/%s: apply revision %d (%s): %w", r.topic, id, ev.Revision, ev.Type, err)
			}
			root.Revision = int64(ev.Revision)
			root.Replayed++
		}
	}
	return root, nil
}

// loadSnapshot starts root from the newest snapshot, if it has a usable one.
func (r *Repository[A]) loadSnapshot(ctx context.Context, root *Root[A]) error {
	page, err := r.client.ReadStream(ctx, r.snapshotTopic, root.ID, client.Backwards(), client.MaxCount(1))
	if errors.Is(err, client.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load snapshot of %s/%s: %w", r.topic, root.ID, err)
	}
	root.snapshotStreamRevision = page.LastRevision
	if len(page.Events) == 0 {
		return nil
	}
	snap := page.Events[0]
	if snap.Type != SnapshotEventType || snap.Metadata[MetadataSnapshotSchema] != r.opts.schema {
		return nil // another schema: replay from the start
	}
	covered, err := strconv.ParseInt(snap.Metadata[MetadataSnapshotRevision], 10, 64)
	if err != nil || covered < 0 {
		return fmt.Errorf("snapshot of %s/%s at revision %d: bad %s %q", r.topic, root.ID, snap.Revision, MetadataSnapshotRevision, snap.Metadata[MetadataSnapshotRevision])
	}
	state := r.newState()
	if err := r.opts.decode(snap.Data, &state); err != nil {
		return fmt.Errorf("snapshot of %s/%s at revision %d: decode: %w", r.topic, root.ID, snap.Revision, err)
	}
	root.State, root.Revision, root.SnapshotRevision = state, covered, covered
	return nil
}

// Save appends events to the aggregate's stream, expecting the revision
// root was loaded at (no stream for a new aggregate), then applies them to
// root.State. A concurrent writer makes it fail with a
// *client.WrongExpectedRevisionError and leaves root unchanged. When the
// events leave enough after the last snapshot it writes a new one.
//
// Events applied here carry what the append answered (revisions,
// positions) but the local clock's time, not the server's.
func (r *Repository[A]) Save(ctx context.Context, root *Root[A], events ...client.EventData) (client.AppendResult, error) {
	if root.broken != nil {
		return client.AppendResult{}, fmt.Errorf("save aggregate %s/%s: reload it first: %w", r.topic, root.ID, root.broken)
	}
	if len(events) == 0 {
		return client.AppendResult{}, nil
	}
	events = withIDs(events)
	res, err := r.client.Append(ctx, r.topic, root.ID, client.ExpectedAfter(root.Revision), events...)
	if err != nil {
		return client.AppendResult{}, fmt.Errorf("save aggregate: %w", err)
	}
	return res, r.saved(ctx, root, events, res)
}

// saved applies events, appended to root's stream with result res, to
// root, and writes a snapshot when enough events followed the last one.
func (r *Repository[A]) saved(ctx context.Context, root *Root[A], events []client.EventData, res client.AppendResult) error {
	root.LastAppend = res
	now := time.Now()
	for i, ev := range events {
		rec := client.RecordedEvent{
			Topic:       r.topic,
			Stream:      root.ID,
			Revision:    res.FirstRevision + uint64(i),
			Position:    client.Position{Partition: res.Position.Partition, Offset: res.Position.Offset - int64(len(events)-1-i)},
			ID:          ev.ID,
			Type:        ev.Type,
			Data:        ev.Data,
			ContentType: ev.ContentType,
			Metadata:    ev.Metadata,
			Time:        now,
		}
		if rec.ContentType == "" {
			rec.ContentType = "application/json"
		}
		if err := root.State.Apply(rec); err != nil {
			root.broken = fmt.Errorf("revision %d (%s) was saved but does not apply: %w", rec.Revision, rec.Type, err)
			return fmt.Errorf("save aggregate %s/%s: %w", r.topic, root.ID, root.broken)
		}
	}
	root.Revision = int64(res.LastRevision)
	if every := r.opts.snapshotEvery; every > 0 && root.Revision-root.SnapshotRevision >= every {
		if err := r.writeSnapshot(ctx, root); err != nil && r.opts.onSnapshotError != nil {
			r.opts.onSnapshotError(root.ID, err)
		}
	}
	return nil
}

// Change is one aggregate's part of SaveAll: events for a root of some
// repository (Repository.Change).
type Change interface {
	part() (client.AppendPart, error)
	saved(ctx context.Context, res client.AppendResult) error
}

type change[A Aggregate] struct {
	r      *Repository[A]
	root   *Root[A]
	events []client.EventData
}

// Change is the part of a SaveAll that appends events to root's stream,
// expecting the revision root was loaded at, as Save does.
func (r *Repository[A]) Change(root *Root[A], events ...client.EventData) Change {
	return &change[A]{r: r, root: root, events: withIDs(events)}
}

func (c *change[A]) part() (client.AppendPart, error) {
	if c.root.broken != nil {
		return client.AppendPart{}, fmt.Errorf("save aggregate %s/%s: reload it first: %w", c.r.topic, c.root.ID, c.root.broken)
	}
	return client.AppendPart{Topic: c.r.topic, Stream: c.root.ID, Expected: client.ExpectedAfter(c.root.Revision), Events: c.events}, nil
}

func (c *change[A]) saved(ctx context.Context, res client.AppendResult) error {
	return c.r.saved(ctx, c.root, c.events, res)
}

// SaveAll saves several aggregates, of one repository or of several, in
// one AppendMulti: every change is written at the revision its root was
// loaded at, or none is. A concurrent writer to any of them makes it fail
// with a *client.AppendMultiError naming each aggregate that moved, and
// leaves every root unchanged. On success each root is updated as Save
// updates it. Changes must be of repositories on c's server.
func SaveAll(ctx context.Context, c *client.Client, changes ...Change) ([]client.AppendResult, error) {
	parts := make([]client.AppendPart, 0, len(changes))
	for _, ch := range changes {
		p, err := ch.part()
		if err != nil {
			return nil, err
		}
		if len(p.Events) == 0 {
			return nil, fmt.Errorf("save aggregates: %s/%s has no events", p.Topic, p.Stream)
		}
		parts = append(parts, p)
	}
	res, err := c.AppendMulti(ctx, parts...)
	if err != nil {
		return nil, fmt.Errorf("save aggregates: %w", err)
	}
	var errs []error
	for i, ch := range changes {
		errs = append(errs, ch.saved(ctx, res[i]))
	}
	return res, errors.Join(errs...)
}

// withIDs gives every event an id before the append, so that the events
// applied locally carry the ids the stream has.
func withIDs(events []client.EventData) []client.EventData {
	out := make([]client.EventData, len(events))
	for i, ev := range events {
		if ev.ID == "" {
			ev.ID = uuid.NewString()
		}
		out[i] = ev
	}
	return out
}

// writeSnapshot stores root's state as the newest snapshot. Losing a race
// to another snapshot writer is not an error: theirs is as good.
func (r *Repository[A]) writeSnapshot(ctx context.Context, root *Root[A]) error {
	data, err := r.opts.encode(root.State)
	if err != nil {
		return fmt.Errorf("snapshot of %s/%s: encode: %w", r.topic, root.ID, err)
	}
	if root.snapshotStreamRevision < 0 {
		// Before the first snapshot, so that no snapshot stream exists
		// without the bound that keeps it to one event.
		if _, err := r.client.SetStreamMetadata(ctx, r.snapshotTopic, root.ID, client.StreamMetadata{MaxCount: new(uint64(1))}); err != nil {
			return fmt.Errorf("snapshot of %s/%s: %w", r.topic, root.ID, err)
		}
	}
	res, err := r.client.Append(ctx, r.snapshotTopic, root.ID, client.ExpectedAfter(root.snapshotStreamRevision), client.EventData{
		Type: SnapshotEventType,
		Data: data,
		Metadata: map[string]string{
			MetadataSnapshotRevision: strconv.FormatInt(root.Revision, 10),
			MetadataSnapshotSchema:   r.opts.schema,
		},
	})
	if errors.Is(err, client.ErrWrongExpectedRevision) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshot of %s/%s: %w", r.topic, root.ID, err)
	}
	root.SnapshotRevision = root.Revision
	root.snapshotStreamRevision = int64(res.LastRevision)
	return nil
}

// Execute runs command on the aggregate's current state and saves the
// events it returns. When another writer got there first, it loads the
// newer state and runs command again, up to the repository's attempts,
// pausing a jittered, growing moment between them. command must therefore
// have no effect besides its result. An error from command is returned as
// is, and nothing is saved; no events saves nothing.
func (r *Repository[A]) Execute(ctx context.Context, id string, command func(state A) ([]client.EventData, error)) (*Root[A], error) {
	var lost error
	for attempt := 1; attempt <= r.opts.attempts; attempt++ {
		root, err := r.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		events, err := command(root.State)
		if err != nil {
			return root, err
		}
		if len(events) == 0 {
			return root, nil
		}
		if _, err = r.Save(ctx, root, events...); err == nil {
			return root, nil
		}
		if !errors.Is(err, client.ErrWrongExpectedRevision) {
			return nil, err
		}
		lost = err
		if attempt < r.opts.attempts {
			if err := backoff.Sleep(ctx, r.opts.backoff.Pause(attempt)); err != nil {
				return nil, fmt.Errorf("execute on %s/%s: %w", r.topic, id, err)
			}
		}
	}
	return nil, fmt.Errorf("execute on %s/%s: lost %d attempts to concurrent writers: %w", r.topic, id, r.opts.attempts, lost)
}

// Delete deletes the aggregate's stream and its snapshots. The snapshots go
// first: the other order could leave a snapshot of a deleted state to be
// loaded again. After a soft delete the aggregate starts from newState's
// state, its revisions continuing; after a hard delete it can never be
// loaded or saved again.
func (r *Repository[A]) Delete(ctx context.Context, id string, mode client.DeleteMode) error {
	_, err := r.client.DeleteStream(ctx, r.snapshotTopic, id, mode, client.Any)
	if err != nil && !errors.Is(err, client.ErrStreamNotFound) && !errors.Is(err, client.ErrTopicNotFound) {
		return fmt.Errorf("delete aggregate %s/%s: %w", r.topic, id, err)
	}
	if _, err := r.client.DeleteStream(ctx, r.topic, id, mode, client.Any); err != nil {
		return fmt.Errorf("delete aggregate %s/%s: %w", r.topic, id, err)
	}
	return nil
}
