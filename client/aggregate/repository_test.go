package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
)

// counter counts Incremented events. Each event says the count its command
// saw, so applying one on top of another state (a lost update) fails.
type counter struct {
	Count int `json:"count"`
	// Applied lists the revisions folded in, through snapshots too.
	Applied []uint64 `json:"applied"`
	// Note is set only by tests planting snapshots.
	Note string `json:"note,omitempty"`
}

type incremented struct {
	From int `json:"from"`
}

func (c *counter) Apply(ev client.RecordedEvent) error {
	if ev.Type != "Incremented" {
		return fmt.Errorf("unknown event type %q", ev.Type)
	}
	var d incremented
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return err
	}
	if d.From != c.Count {
		return fmt.Errorf("event decided at count %d applied at count %d", d.From, c.Count)
	}
	if n := len(c.Applied); n > 0 && c.Applied[n-1]+1 != ev.Revision {
		return fmt.Errorf("revision %d applied after %d", ev.Revision, c.Applied[n-1])
	}
	c.Count++
	c.Applied = append(c.Applied, ev.Revision)
	return nil
}

func newCounter() *counter { return &counter{} }

func incrementEvent(from int) client.EventData {
	data, _ := json.Marshal(incremented{From: from})
	return client.EventData{Type: "Incremented", Data: data}
}

func increment(c *counter) ([]client.EventData, error) {
	return []client.EventData{incrementEvent(c.Count)}, nil
}

func newRepo(t *testing.T, c *client.Client, topic string, opts ...Option) *Repository[*counter] {
	t.Helper()
	r, err := NewRepository(c, topic, newCounter, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConcurrentExecute: 8 goroutines incrementing one aggregate through
// Execute lose no update: the final count is the number of commands, the
// stream's revisions are contiguous, and every event was decided on the
// state right before it.
func TestConcurrentExecute(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	// Generous attempts: 8 writers on one stream conflict often, and the
	// test is about correctness under conflict, not the default budget.
	repo := newRepo(t, c, "counters", SnapshotEvery(7), ExecuteRetries(200, 2*time.Millisecond, 40*time.Millisecond),
		OnSnapshotError(func(id string, err error) { t.Errorf("snapshot of %s: %v", id, err) }))
	const writers, perWriter = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for range writers {
		wg.Go(func() {
			for range perWriter {
				if _, err := repo.Execute(ctx, "c-1", increment); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	root, err := repo.Load(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.State.Count != writers*perWriter || root.Revision != writers*perWriter-1 {
		t.Fatalf("count %d at revision %d, want %d at %d", root.State.Count, root.Revision, writers*perWriter, writers*perWriter-1)
	}
	if root.SnapshotRevision < 0 || root.Replayed >= 7+1 {
		t.Fatalf("load used snapshot at %d and replayed %d events", root.SnapshotRevision, root.Replayed)
	}
	want := 0
	for ev, err := range c.ReadStreamAll(ctx, "counters", "c-1", client.MaxCount(16)) {
		if err != nil {
			t.Fatal(err)
		}
		var d incremented
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if ev.Revision != uint64(want) || d.From != want {
			t.Fatalf("event %d: revision %d decided at count %d", want, ev.Revision, d.From)
		}
		want++
	}
	if want != writers*perWriter {
		t.Fatalf("stream has %d events", want)
	}
}

// TestSnapshotLoad: a load starts from the newest snapshot and applies only
// the events after the revision it covers; the snapshot stream keeps one.
func TestSnapshotLoad(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	repo := newRepo(t, c, "meters", SnapshotEvery(5), OnSnapshotError(func(id string, err error) { t.Errorf("snapshot of %s: %v", id, err) }))
	for range 12 {
		if _, err := repo.Execute(ctx, "m-1", increment); err != nil {
			t.Fatal(err)
		}
	}
	// Saves at revisions 0..11 snapshot at 4 (5 events after none) and at
	// 9 (5 after 4).
	root, err := repo.Load(ctx, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.SnapshotRevision != 9 || root.Replayed != 2 || root.Revision != 11 || root.State.Count != 12 {
		t.Fatalf("loaded snapshot %d, replayed %d, revision %d, count %d", root.SnapshotRevision, root.Replayed, root.Revision, root.State.Count)
	}
	if !slices.Equal(root.State.Applied, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("applied %v", root.State.Applied)
	}
	info, err := c.GetStreamMetadata(ctx, "meters.snapshots", "m-1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Metadata.MaxCount == nil || *info.Metadata.MaxCount != 1 || info.LastRevision != 1 {
		t.Fatalf("snapshot stream: %+v", info)
	}
	page, err := c.ReadStream(ctx, "meters.snapshots", "m-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Metadata[MetadataSnapshotRevision] != "9" {
		t.Fatalf("snapshot stream shows %d events: %+v", len(page.Events), page.Events)
	}

	// A snapshot of a state the events never produced shows that Load
	// takes the snapshot as is and replays only what follows it.
	planted, _ := json.Marshal(counter{Count: 10, Note: "planted"})
	if _, err := c.Append(ctx, "meters.snapshots", "m-1", client.Any, client.EventData{Type: SnapshotEventType, Data: planted,
		Metadata: map[string]string{MetadataSnapshotRevision: "9", MetadataSnapshotSchema: DefaultSnapshotSchema}}); err != nil {
		t.Fatal(err)
	}
	root, err = repo.Load(ctx, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.State.Note != "planted" || root.State.Count != 12 || !slices.Equal(root.State.Applied, []uint64{10, 11}) {
		t.Fatalf("from the planted snapshot: %+v, want the plant with revisions 10 and 11 applied", root.State)
	}

	// Another schema ignores the snapshots and replays everything.
	v2 := newRepo(t, c, "meters", SnapshotSchema("2"))
	root, err = v2.Load(ctx, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.SnapshotRevision != -1 || root.Replayed != 12 || root.State.Count != 12 {
		t.Fatalf("schema 2: snapshot %d, replayed %d, count %d", root.SnapshotRevision, root.Replayed, root.State.Count)
	}
}

// TestSaveConflict: saving a stale root fails with the actual revision and
// changes neither the stream nor the root.
func TestSaveConflict(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	repo := newRepo(t, c, "tills")
	fresh, err := repo.Load(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Revision != -1 || fresh.State.Count != 0 {
		t.Fatalf("new aggregate: %+v", fresh)
	}
	a, _ := repo.Load(ctx, "t-1")
	b, _ := repo.Load(ctx, "t-1")
	if _, err := repo.Save(ctx, a, incrementEvent(0), incrementEvent(1)); err != nil {
		t.Fatal(err)
	}
	if a.Revision != 1 || a.State.Count != 2 || a.LastAppend.LastRevision != 1 {
		t.Fatalf("after save: revision %d count %d", a.Revision, a.State.Count)
	}
	_, err = repo.Save(ctx, b, incrementEvent(0))
	var wrong *client.WrongExpectedRevisionError
	if !errors.As(err, &wrong) || wrong.Actual != 1 || wrong.Expected != client.NoStream || wrong.Stream != "t-1" {
		t.Fatalf("stale save: %v", err)
	}
	if b.Revision != -1 || b.State.Count != 0 {
		t.Fatalf("stale root changed: %+v", b)
	}
}

// TestExecuteGivesUp: with a writer getting in before every attempt,
// Execute stops after its attempts and says why; a command's own error
// saves nothing.
func TestExecuteGivesUp(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	repo := newRepo(t, c, "queues", ExecuteRetries(3, time.Millisecond, time.Millisecond))
	interfered := 0
	_, err := repo.Execute(ctx, "q-1", func(s *counter) ([]client.EventData, error) {
		interfered++
		if _, err := c.Append(ctx, "queues", "q-1", client.Any, incrementEvent(s.Count)); err != nil {
			return nil, err
		}
		return increment(s)
	})
	if !errors.Is(err, client.ErrWrongExpectedRevision) || interfered != 3 {
		t.Fatalf("after %d attempts: %v", interfered, err)
	}
	refused := errors.New("refused")
	if _, err := repo.Execute(ctx, "q-1", func(*counter) ([]client.EventData, error) { return nil, refused }); err != refused {
		t.Fatalf("command error: %v", err)
	}
	root, err := repo.Load(ctx, "q-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.State.Count != 3 {
		t.Fatalf("count %d: only the interfering writer's 3 events belong in the stream", root.State.Count)
	}
}

// TestDelete: after a soft delete the aggregate starts over, its revisions
// continuing and its old snapshot gone; after a hard delete it cannot load.
func TestDelete(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	repo := newRepo(t, c, "carts", SnapshotEvery(2))
	for range 3 {
		if _, err := repo.Execute(ctx, "cart-1", increment); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Delete(ctx, "cart-1", client.SoftDelete); err != nil {
		t.Fatal(err)
	}
	root, err := repo.Load(ctx, "cart-1")
	if err != nil {
		t.Fatal(err)
	}
	if root.State.Count != 0 || root.Revision != -1 || root.SnapshotRevision != -1 {
		t.Fatalf("after soft delete: count %d revision %d snapshot %d", root.State.Count, root.Revision, root.SnapshotRevision)
	}
	if root, err = repo.Execute(ctx, "cart-1", increment); err != nil || root.Revision != 3 || root.State.Count != 1 {
		t.Fatalf("execute after soft delete: %+v %v", root, err)
	}
	if err := repo.Delete(ctx, "cart-1", client.HardDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Load(ctx, "cart-1"); !errors.Is(err, client.ErrStreamDeleted) {
		t.Fatalf("load after hard delete: %v", err)
	}
	if _, err := repo.Execute(ctx, "never", func(*counter) ([]client.EventData, error) { return nil, nil }); err != nil {
		t.Fatalf("a command with no events: %v", err)
	}
}
