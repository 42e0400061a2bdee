package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/txn"
)

// TestSchedulerErrorsAreRetriable: a produce refused by the replica
// scheduler before anything was proposed (its group removed by a move or
// a renewal, the node closing, too many calls queued) gets a code clients
// retry after a metadata refresh, never UNKNOWN_SERVER_ERROR, which
// franz-go fails the batch on.
func TestSchedulerErrorsAreRetriable(t *testing.T) {
	for _, err := range []error{replica.ErrUnknownGroup, replica.ErrClosed, replica.ErrBusy} {
		wrapped := fmt.Errorf("propose to orders-0: %w", err)
		if code := errorCode(wrapped); code != kerr.NotLeaderForPartition.Code {
			t.Errorf("%v: code %d, want NOT_LEADER_OR_FOLLOWER (%d)", err, code, kerr.NotLeaderForPartition.Code)
		}
	}
}

// TestProduceToCoordinatorTopicsRefused: a client's produce to
// __consumer_offsets or __transaction_state is refused with
// INVALID_TOPIC_EXCEPTION, as Kafka does: records there would change what
// a coordinator loads after a failover, unseen by the one serving now.
func TestProduceToCoordinatorTopicsRefused(t *testing.T) {
	ts := startServer(t)
	rc := ts.dial(t)
	for _, topic := range []string{groups.OffsetsTopic, txn.StateTopic} {
		if _, err := ts.cluster.CreateTopic(topic, 1, nil, false); err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch.Build([]batch.Record{{Key: []byte("k"), Value: []byte("v")}}, batch.None)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := rc.roundTrip(req).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
			t.Errorf("produce to %s: code %d, want INVALID_TOPIC_EXCEPTION (%d)", topic, code, kerr.InvalidTopicException.Code)
		}
	}
}
