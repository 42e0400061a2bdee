package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/txn"
)

// unwatchedLeaders is a node's leader view whose changes are never
// signalled: a coordinator over it learns of a leadership only when a
// request asks, as one whose loop has not caught up yet.
type unwatchedLeaders struct{ *cluster.Cluster }

func (unwatchedLeaders) LeadersChanged() <-chan struct{} { return nil }

// noMarkers writes no marker: the test ends no transaction.
type noMarkers struct{}

func (noMarkers) WriteMarker(context.Context, txn.TopicPartition, int64, int16, bool, int32) error {
	return nil
}

// TestCoordinatorRegainingLeadershipReloads: a transaction coordinator
// that lost its __transaction_state partition's leadership and won it
// back, before its loop saw either change, loads the partition again
// before answering: the other node's coordinator meanwhile gave the
// transactional id's next producer epoch 1, and answering from what was
// loaded before would give epoch 1 a second time, so two producers would
// share it and neither fence the other.
func TestCoordinatorRegainingLeadershipReloads(t *testing.T) {
	servers := startThree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(s *Server) *txn.Coordinator {
		cfg := txn.DefaultConfig()
		cfg.StateTopicPartitions, cfg.Leaders = 1, unwatchedLeaders{s.Cluster()}
		co, err := txn.Open(s.Cluster(), cfg, noMarkers{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = co.Close() })
		return co
	}
	coA, coB := open(servers[0]), open(servers[1])
	for { // Locate creates the topic, which then elects its leader
		_, err := coA.Locate("t")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	moveTo := func(node int32) {
		t.Helper()
		if err := servers[node-1].Cluster().TransferLeader(ctx, txn.StateTopic, 0, node); err != nil {
			t.Fatalf("move %s-0 to node %d: %v", txn.StateTopic, node, err)
		}
	}
	moveTo(1)
	pid, epoch, err := coA.InitProducerID("t", 60_000, -1, -1)
	if err != nil || epoch != 0 {
		t.Fatalf("first init on node 1: %d %d %v", pid, epoch, err)
	}
	moveTo(2)
	if _, epoch, err := coB.InitProducerID("t", 60_000, -1, -1); err != nil || epoch != 1 {
		t.Fatalf("init on node 2: epoch %d %v, want 1", epoch, err)
	}
	moveTo(1)
	got, epoch, err := coA.InitProducerID("t", 60_000, -1, -1)
	if err != nil || got != pid || epoch != 2 {
		t.Fatalf("init on node 1 after it led again: %d %d %v, want %d 2", got, epoch, err, pid)
	}
}
