package integration

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kcatMember is `kcat -G` (librdkafka's balanced consumer) running in the
// background, printing one consumed value per line.
type kcatMember struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output strings.Builder
	exited chan struct{}
}

func (k *kcatMember) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.output.Write(p)
}

func (k *kcatMember) values() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]int{}
	for _, line := range strings.Split(k.output.String(), "\n") {
		if line != "" {
			out[line]++
		}
	}
	return out
}

func startKcatMember(t *testing.T, kcatPath, addr, group, topic string) *kcatMember {
	t.Helper()
	k := &kcatMember{exited: make(chan struct{})}
	k.cmd = exec.Command(kcatPath, "-b", addr, "-G", group, "-q", "-u", "-f", `%s\n`,
		"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
		"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100",
		"-X", "partition.assignment.strategy=range", topic)
	k.cmd.Stdout = k
	var stderr tailBuffer
	stderr.limit = 1 << 16
	k.cmd.Stderr = &stderr
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start kcat -G: %v", err)
	}
	go func() { _ = k.cmd.Wait(); close(k.exited) }()
	t.Cleanup(func() {
		k.kill()
		if t.Failed() {
			t.Logf("kcat -G stderr:\n%s", tail(stderr.String()))
		}
	})
	return k
}

// kill ends kcat with SIGKILL: it leaves no LeaveGroup behind, as a crash.
func (k *kcatMember) kill() {
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.exited
}

// saramaMember is an IBM/sarama consumer group member.
type saramaMember struct {
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]int
}

func (s *saramaMember) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (s *saramaMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (s *saramaMember) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for message := range claim.Messages() {
		s.mu.Lock()
		s.seen[string(message.Value)]++
		s.mu.Unlock()
		session.MarkMessage(message, "")
	}
	return nil
}

func (s *saramaMember) values() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for v, n := range s.seen {
		out[v] = n
	}
	return out
}

func startSaramaMember(t *testing.T, addr, group, topic string) *saramaMember {
	t.Helper()
	config := sarama.NewConfig()
	config.Version = sarama.V3_6_0_0
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	config.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	config.Consumer.Group.Session.Timeout = 10 * time.Second
	config.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	config.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	group2, err := sarama.NewConsumerGroup([]string{addr}, group, config)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &saramaMember{group: group2, cancel: cancel, done: make(chan struct{}), seen: map[string]int{}}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			if err := group2.Consume(ctx, []string{topic}, s); err != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
		_ = group2.Close()
	})
	return s
}

// requireConsumedOnce waits until sources together consumed every value of
// want, each once except those in mayRepeat, and nothing else.
func requireConsumedOnce(t *testing.T, want, mayRepeat map[string]bool, sources ...func() map[string]int) {
	t.Helper()
	deadline := time.Now().Add(groupWaitMax)
	for {
		got := map[string]int{}
		for _, source := range sources {
			for v, n := range source() {
				got[v] += n
			}
		}
		missing := 0
		for v := range want {
			if got[v] == 0 {
				missing++
			}
		}
		if missing == 0 {
			for v, n := range got {
				if !want[v] || (n != 1 && !mayRepeat[v]) {
					var per []int
					for _, source := range sources {
						per = append(per, source()[v])
					}
					t.Fatalf("value %q consumed %d times (per member %v; expected: %v)", v, n, per, want[v])
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d values not consumed within %s", missing, len(want), groupWaitMax)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMixedClientGroup proves librdkafka (kcat -G), franz-go and IBM/sarama
// members share one group with the range assignor: every record of a
// six-partition topic is consumed exactly once; when kcat is killed with
// SIGKILL, its partitions move to the others within its session timeout and
// they consume what follows; only records kcat had not committed yet are
// read again.
func TestMixedClientGroup(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")
	const topic, group = "mixed", "mixed-group"
	createTopic(t, server.kafkaAddr, topic, 6, nil)
	k := startKcatMember(t, kcatPath, server.kafkaAddr, group, topic)
	franz := startGroupMember(t, server.kafkaAddr, group, topic, kgo.Balancers(kgo.RangeBalancer()))
	s := startSaramaMember(t, server.kafkaAddr, group, topic)
	waitGroupStable(t, server.kafkaAddr, group, 3)

	produceValues(t, server.kafkaAddr, topic, "m", 0, 120)
	franzValues := func() map[string]int { v, _, _ := franz.snapshot(); return v }
	requireConsumedOnce(t, valueSet("m", 0, 120), nil, k.values, franzValues, s.values)
	for name, values := range map[string]map[string]int{"kcat": k.values(), "franz-go": franzValues(), "sarama": s.values()} {
		if len(values) == 0 {
			t.Fatalf("%s consumed nothing: partitions were not shared", name)
		}
	}

	// kcat commits every 5 s whatever its settings say, so what it consumed
	// since its last commit is delivered again to the new owners: at least
	// once, as Kafka promises after a crash. The others commit every 100 ms.
	time.Sleep(time.Second)
	uncommitted := map[string]bool{}
	for v := range k.values() {
		uncommitted[v] = true
	}
	killed := time.Now()
	k.kill()
	waitGroupStable(t, server.kafkaAddr, group, 2)
	if moved := time.Since(killed); moved > 6*time.Second+5*time.Second {
		t.Fatalf("partitions moved %s after the kill; session timeout is 6s", moved)
	}
	produceValues(t, server.kafkaAddr, topic, "m", 120, 60)
	requireConsumedOnce(t, valueSet("m", 0, 180), uncommitted, k.values, franzValues, s.values)
}
