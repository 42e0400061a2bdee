package server

import (
	"context"
	"errors"
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
	// initOn moves the partition's leadership to node and asks co there;
	// a leadership lost again around the write (an election on a loaded
	// machine) answers NOT_COORDINATOR, which a client retries, so this
	// does too. A request that answered so may still have written its
	// epoch, so the checks below compare with the epoch before rather
	// than expect exact numbers.
	initOn := func(co *txn.Coordinator, node int32) (int64, int16) {
		t.Helper()
		for {
			if err := servers[node-1].Cluster().TransferLeader(ctx, txn.StateTopic, 0, node); err != nil {
				t.Fatalf("move %s-0 to node %d: %v", txn.StateTopic, node, err)
			}
			pid, epoch, err := co.InitProducerID("t", 60_000, -1, -1)
			if err == nil {
				return pid, epoch
			}
			if !errors.Is(err, txn.ErrNotCoordinator) && !errors.Is(err, txn.ErrCoordinatorLoadInProgress) || ctx.Err() != nil {
				t.Fatalf("init on node %d: %v", node, err)
			}
			t.Logf("init on node %d, retried: %v", node, err)
		}
	}
	pid, first := initOn(coA, 1)
	_, second := initOn(coB, 2)
	if second <= first {
		t.Fatalf("init on node 2: epoch %d after node 1's %d", second, first)
	}
	// Answering from node 1's first load would give first+1 again.
	if got, third := initOn(coA, 1); got != pid || third <= second {
		t.Fatalf("init on node 1 after it led again: producer %d epoch %d, want producer %d above epoch %d", got, third, pid, second)
	}
}
