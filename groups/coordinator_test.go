package groups

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/storage/vfs"
)

func openTest(t *testing.T, fsys vfs.FS) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := cluster.Open(fsys, cluster.DefaultConfig("/data"), logger)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelayMs = 0
	cfg.OffsetsTopicPartitions = 3
	co, err := Open(cl, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	return cl, co
}

// TestCommittedOffsetsSurviveRestart proves commits are replayed from
// __consumer_offsets on start, deletions included, with metadata and
// leader epoch intact.
func TestCommittedOffsetsSurviveRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys := vfs.NewMem()
	cl, co := openTest(t, fsys)
	simple := CommitRequest{Generation: -1}
	for _, group := range []string{"keep", "drop", "partly"} {
		simple.Group = group
		perPartition, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{
			{"t", 0}: {Offset: 5, LeaderEpoch: 2, Metadata: "m-" + group},
			{"t", 1}: {Offset: 7, LeaderEpoch: -1},
		})
		if err != nil || len(perPartition) != 0 {
			t.Fatalf("commit %s: %v %v", group, err, perPartition)
		}
	}
	simple.Group = "keep"
	if _, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 6, LeaderEpoch: 3, Metadata: "later"}}); err != nil {
		t.Fatal(err)
	}
	if err := co.DeleteGroup(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.DeleteOffsets(ctx, "partly", []TopicPartition{{"t", 1}}); err != nil {
		t.Fatal(err)
	}
	if tp, ok := cl.Topic(OffsetsTopic); !ok || tp.Configs["cleanup.policy"] != "compact" || len(tp.Partitions) != 3 {
		t.Fatalf("offsets topic not created as a 3-partition compacted topic: %+v", tp)
	}
	_ = co.Close()
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}

	cl, co = openTest(t, fsys)
	defer cl.Close()
	defer co.Close()
	want := map[string]map[TopicPartition]OffsetCommit{
		"keep":   {{"t", 0}: {Offset: 6, LeaderEpoch: 3, Metadata: "later"}, {"t", 1}: {Offset: 7, LeaderEpoch: -1}},
		"drop":   {},
		"partly": {{"t", 0}: {Offset: 5, LeaderEpoch: 2, Metadata: "m-partly"}},
	}
	for group, offsets := range want {
		got, err := co.FetchOffsets(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(offsets) {
			t.Fatalf("%s: got %v, want %v", group, got, offsets)
		}
		for tp, oc := range offsets {
			g := got[tp]
			if g.Offset != oc.Offset || g.LeaderEpoch != oc.LeaderEpoch || g.Metadata != oc.Metadata || g.CommitTimestampMs == 0 {
				t.Fatalf("%s %v: got %+v, want %+v", group, tp, g, oc)
			}
		}
	}
	if list, _ := co.List(ctx); len(list) != 2 {
		t.Fatalf("restored groups %+v, want keep and partly", list)
	}
}

// TestJoinWaitsAndHonoursContext proves a JoinGroup call returns with the
// rebalance and that a caller that gives up is released.
func TestJoinWaitsAndHonoursContext(t *testing.T) {
	cl, co := openTest(t, vfs.NewMem())
	defer cl.Close()
	defer co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := JoinRequest{Group: "g", ClientID: "a", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 60000,
		ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}}
	first, err := co.Join(ctx, req)
	if err != nil || first.Err != nil || first.Generation != 1 {
		t.Fatalf("first join: %+v %v", first, err)
	}
	// A second member's join waits for the first to rejoin; give up early.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	req.ClientID = "b"
	if _, err := co.Join(short, req); err != context.DeadlineExceeded {
		t.Fatalf("waiting join returned %v, want deadline exceeded", err)
	}
	_ = co.Close()
	if _, err := co.Join(ctx, req); err != ErrClosed {
		t.Fatalf("join after close: %v, want ErrClosed", err)
	}
}

// TestPartitionForMatchesKafka checks the group-to-partition choice
// against Java's String.hashCode, which Kafka uses: "my-group" hashes to
// -1906497762, "console-consumer-1" to 35782224, "a" to 97.
func TestPartitionForMatchesKafka(t *testing.T) {
	for _, c := range []struct {
		group string
		want  int32
	}{
		{"", 0},
		{"a", 47},
		{"my-group", 12},
		{"console-consumer-1", 24},
	} {
		if got := partitionFor(c.group, 50); got != c.want {
			t.Errorf("partitionFor(%q, 50) = %d, want %d", c.group, got, c.want)
		}
	}
}
