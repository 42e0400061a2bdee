package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shutdownFirstAckMax bounds the time from the start of a leader's Close
// to the first record a default franz-go producer has acknowledged on its
// partition by the new leader: a client told of no live leader when it
// asks waits its MetadataMinAge (5 s) before asking again.
const shutdownFirstAckMax = 3 * time.Second

// producerMetadataMinAge is franz-go's default MetadataMinAge.
const producerMetadataMinAge = 5 * time.Second

// TestClusterCloseHandsOffLeadership: closing a cluster node moves the
// leadership of every partition it led, and of the metadata group if it
// led it, to another node before the node leaves: as soon as Close
// returns, every survivor names a live leader of each of them (a term won
// while the closed node still served), and an idempotent franz-go
// producer with default settings gets its first acknowledgement there
// well within its 5 s MetadataMinAge. Without the hand-off the survivors
// still name the closed node when Close returns (their election follows
// the transport finding it gone).
func TestClusterCloseHandsOffLeadership(t *testing.T) {
	logs := map[int32]*lockedBuffer{1: {}, 2: {}, 3: {}}
	tc := startClusterLogging(t, func(id int32) *slog.Logger { return slog.New(slog.NewTextHandler(logs[id], nil)) })
	const topic = "handoff"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)

	metadata := &metadataHook{}
	producer := newFailoverClient(t, tc, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.WithHooks(metadata),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(failoverStageWaitMax))
	// Paced so that the records last past the wait below and the close.
	acks := &ackLog{acks: map[string]ack{}, pace: 2 * time.Millisecond}
	produceCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); acks.produceUntil(produceCtx, producer, topic) }()
	defer func() { stopProducing(); <-produced }()
	acks.waitAcked(t, failoverStageRecords)
	// franz-go refreshes its metadata after a failed produce at most once
	// per MetadataMinAge (5 s by default) since its last refresh, which it
	// may schedule itself a MetadataMinAge after its first load: closing
	// within that, it would wait whatever the cluster tells it. Close once
	// the producer is past it, as a long-lived one is.
	metadata.waitQuiet(t, producerMetadataMinAge+500*time.Millisecond)

	lead := tc.leaderOf(topic, 0)
	var led []int32
	for i := range int32(failoverPartitions) {
		if l, err := tc.servers[lead].Cluster().Leader(topic, i); err == nil && l.Local {
			led = append(led, i)
		}
	}
	ledMeta := tc.servers[lead].Cluster().ControllerID() == lead
	closing := time.Now()
	tc.stop(lead)
	closed := time.Now()
	for id, s := range tc.servers {
		for _, i := range led {
			if l, err := s.Cluster().Leader(topic, i); err != nil || l.Node < 1 || l.Node == lead {
				t.Errorf("node %d names leader %+v (err %v) of %s-%d right after node %d's Close returned", id, l, err, topic, i, lead)
			}
		}
		if c := s.Cluster().ControllerID(); ledMeta && (c < 1 || c == lead) {
			t.Errorf("node %d names metadata leader %d right after node %d, its leader, closed", id, c, lead)
		}
	}
	handedOff := ""
	for line := range strings.Lines(logs[lead].String()) {
		if strings.Contains(line, "handed off leadership") {
			handedOff = strings.TrimSpace(line)
		}
	}
	if want := fmt.Sprintf("moved=%d left=0", len(led)+btoi(ledMeta)); !strings.Contains(handedOff, want) {
		t.Errorf("node %d logged %q on Close, want a hand-off line with %s", lead, handedOff, want)
	}
	t.Log(handedOff)
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	firstAt := acks.firstAckAfter(0, closed)
	if firstAt.IsZero() {
		t.Fatalf("no record acknowledged on %s-0 after node %d closed", topic, lead)
	}
	first := firstAt.Sub(closing)
	t.Logf("node %d (leader of %s %v, metadata %v) closed in %s; first acks=all record on %s-0 acknowledged %s after the close began",
		lead, topic, led, ledMeta, closed.Sub(closing).Round(time.Millisecond), topic, first.Round(time.Millisecond))
	if first > shutdownFirstAckMax {
		t.Errorf("first acknowledgement %s after the close began, want under %s", first.Round(time.Millisecond), shutdownFirstAckMax)
	}
	stopProducing()
	<-produced
	if len(acks.failed) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(acks.failed), acks.issued, acks.failed[0])
	}
	acked := acks.snapshot()
	tc.waitCaughtUp(t, topic, acked)
	tc.checkReplicas(t, topic, acked)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lockedBuffer is a log destination several goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// metadataHook notes when a client last received a Metadata answer.
type metadataHook struct {
	mu   sync.Mutex
	last time.Time
}

func (h *metadataHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != kmsg.Metadata.Int16() || e2e.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = time.Now()
}

// waitQuiet waits until the client received no Metadata answer for quiet,
// trying a bounded number of times.
func (h *metadataHook) waitQuiet(t *testing.T, quiet time.Duration) {
	t.Helper()
	for range 5 {
		h.mu.Lock()
		wait := time.Until(h.last.Add(quiet))
		h.mu.Unlock()
		if wait <= 0 {
			return
		}
		time.Sleep(wait) // the client's own schedule: nothing to wait on
	}
	t.Fatalf("the client still refreshes its metadata every %s or more often", quiet)
}
