// Command failover measures one leader failover of a Cairn cluster as a
// producer sees it: the time from a SIGKILL of a partition's leader to the
// first acknowledgement of a produce by another node.
//
//	go run ./bench/failover --brokers H:P,... --topic T --pids 1=PID,2=PID,3=PID
//	                        [--partition 0] [--interval 5ms] [--metadata-min-age 5s]
//	                        [--steady 0s] [--client-log] [--timeout 60s] [--json]
//
// It waits until every replica of the partition is in sync, produces one
// record (acks=all) every --interval, and once the leader has acknowledged
// one it kills the leader's process (found in --pids by node id) with
// SIGKILL. The figure ends at the first batch another node acknowledges,
// as franz-go reports it through its produce hook, so an answer the killed
// node sent just before it died cannot end it. bench/run restarts the
// killed node and waits for the cluster to be healthy before the next kill.
//
// --metadata-min-age is the client's MetadataMinAge, the least time between
// two metadata refreshes: after a leader dies, a franz-go producer learns
// of its successor only at the next refresh. Its default is franz-go's
// (5 s), which is what `cairn bench` and any client left at its defaults
// use.
//
// --steady makes the producer run that long before the kill. With 0 (the
// default) the client is new: its first metadata load came just before
// the kill, and franz-go holds its next refresh until MetadataMinAge has
// passed since then, whatever the cluster answers. A producer that has run
// longer than MetadataMinAge (any long-lived one: franz-go refreshes every
// MetadataMaxAge, 5 min, when nothing fails) refreshes at once when the
// leader dies, and its first answer decides how long it waits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errUsage reports bad flags; the flag package has already said why.
var errUsage = errors.New("usage")

// syncPollInterval is how often the replicas' state is asked for while
// waiting for them to be in sync.
const syncPollInterval = 100 * time.Millisecond

type config struct {
	brokers        []string
	topic          string
	partition      int32
	pids           map[int32]int
	interval       time.Duration
	metadataMinAge time.Duration
	steady         time.Duration
	clientLog      bool
	timeout        time.Duration
	json           bool
}

// result is one failover; the JSON field names are what bench/run reads.
type result struct {
	KilledNode       int32   `json:"killed_node"`
	NewLeader        int32   `json:"new_leader"`
	FirstAckMs       float64 `json:"first_ack_ms"`
	MetadataMinAgeMs float64 `json:"metadata_min_age_ms"`
	SteadyMs         float64 `json:"steady_ms"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "failover:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	res, err := failover(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.json {
		return json.NewEncoder(stdout).Encode(res)
	}
	_, err = fmt.Fprintf(stdout, "killed node %d; node %d acknowledged %.0f ms later (MetadataMinAge %s)\n",
		res.KilledNode, res.NewLeader, res.FirstAckMs, cfg.metadataMinAge)
	return err
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka addresses of the cluster")
	topic := fs.String("topic", "", "topic whose partition's leader is killed (must exist)")
	partition := fs.Int("partition", 0, "partition whose leader is killed")
	pids := fs.String("pids", "", "node id to process id: 1=PID,2=PID,...")
	interval := fs.Duration("interval", 5*time.Millisecond, "one record produced every interval")
	minAge := fs.Duration("metadata-min-age", 5*time.Second, "the client's MetadataMinAge (franz-go's default)")
	steady := fs.Duration("steady", 0, "produce this long before the kill (0: kill after the first acknowledgement)")
	clientLog := fs.Bool("client-log", false, "write franz-go's debug log to stderr (why a failover took as long as it did)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return config{}, errUsage
	}
	cfg := config{
		topic: *topic, partition: int32(*partition), interval: *interval,
		metadataMinAge: *minAge, steady: *steady, clientLog: *clientLog, timeout: *timeout, json: *asJSON,
	}
	if *brokers == "" || *topic == "" || *interval <= 0 || *timeout <= 0 || *minAge <= 0 || *steady < 0 {
		fmt.Fprintln(stderr, "failover: --brokers and --topic are required; durations must be positive")
		return config{}, errUsage
	}
	cfg.brokers = strings.Split(*brokers, ",")
	parsed, err := parsePids(*pids)
	if err != nil {
		fmt.Fprintln(stderr, "failover:", err)
		return config{}, errUsage
	}
	cfg.pids = parsed
	return cfg, nil
}

// parsePids reads "1=PID,2=PID": which process serves which node.
func parsePids(s string) (map[int32]int, error) {
	pids := make(map[int32]int)
	for _, item := range strings.Split(s, ",") {
		node, pid, found := strings.Cut(item, "=")
		id, err1 := strconv.ParseInt(node, 10, 32)
		p, err2 := strconv.Atoi(pid)
		if !found || err1 != nil || err2 != nil || id < 1 || p < 1 {
			return nil, fmt.Errorf("--pids: %q is not NODE=PID", item)
		}
		pids[int32(id)] = p
	}
	return pids, nil
}

// ack is one batch a broker acknowledged.
type ack struct {
	at   time.Time
	node int32
}

// ackLog collects the produce hook's acknowledgements of one partition.
type ackLog struct {
	topic     string
	partition int32
	mu        sync.Mutex
	acks      []ack
	changed   chan struct{} // receives (without blocking) after each append
}

func (l *ackLog) OnProduceBatchWritten(meta kgo.BrokerMetadata, topic string, partition int32, _ kgo.ProduceBatchMetrics) {
	if topic != l.topic || partition != l.partition {
		return
	}
	now := time.Now()
	l.mu.Lock()
	l.acks = append(l.acks, ack{at: now, node: meta.NodeID})
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *ackLog) snapshot() []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks)
}

// firstAckBy returns the first acknowledgement at or after since by a node
// other than not (not < 0: any node).
func firstAckBy(acks []ack, since time.Time, not int32) (ack, bool) {
	for _, a := range acks {
		if !a.at.Before(since) && a.node != not {
			return a, true
		}
	}
	return ack{}, false
}

func failover(ctx context.Context, cfg config) (result, error) {
	log := &ackLog{topic: cfg.topic, partition: cfg.partition, changed: make(chan struct{}, 1)}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.brokers...),
		kgo.DefaultProduceTopic(cfg.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(cfg.metadataMinAge),
		kgo.WithHooks(log),
	}
	if cfg.clientLog {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string {
			return time.Now().UTC().Format("15:04:05.000000 ")
		})))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return result{}, fmt.Errorf("client for %v: %w", cfg.brokers, err)
	}
	defer client.Close()
	leader, err := waitInSync(ctx, kadm.NewClient(client), cfg.topic, cfg.partition)
	if err != nil {
		return result{}, err
	}
	pid, ok := cfg.pids[leader]
	if !ok {
		return result{}, fmt.Errorf("leader %d of %s/%d has no process in --pids", leader, cfg.topic, cfg.partition)
	}
	produceCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	go produce(produceCtx, client, cfg.partition, cfg.interval)
	// The leader has answered this client once, so the client knows it and
	// sends to it when it dies.
	started := time.Now()
	if _, err := waitAck(ctx, log, time.Time{}, -1); err != nil {
		return result{}, fmt.Errorf("first acknowledgement from leader %d: %w", leader, err)
	}
	if wait := cfg.steady - time.Since(started); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return result{}, fmt.Errorf("kill node %d (pid %d): %w", leader, pid, err)
	}
	first, err := waitAck(ctx, log, killed, leader)
	if err != nil {
		return result{}, fmt.Errorf("acknowledgement after killing node %d: %w", leader, err)
	}
	return result{
		KilledNode:       leader,
		NewLeader:        first.node,
		FirstAckMs:       float64(first.at.Sub(killed).Microseconds()) / 1000,
		MetadataMinAgeMs: float64(cfg.metadataMinAge.Milliseconds()),
		SteadyMs:         float64(cfg.steady.Milliseconds()),
	}, nil
}

// produce sends one small record every interval until ctx ends; the
// records' outcomes are seen through the ack log, and failures are retried
// by the client.
func produce(ctx context.Context, client *kgo.Client, partition int32, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	value := make([]byte, 100)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			client.Produce(ctx, &kgo.Record{Partition: partition, Value: value}, nil)
		}
	}
}

// waitAck waits for the first acknowledgement at or after since by a node
// other than not.
func waitAck(ctx context.Context, log *ackLog, since time.Time, not int32) (ack, error) {
	for {
		if a, ok := firstAckBy(log.snapshot(), since, not); ok {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return ack{}, ctx.Err()
		case <-log.changed:
		}
	}
}

// waitInSync waits until the partition has a leader and every replica is in
// sync, and returns the leader.
func waitInSync(ctx context.Context, admin *kadm.Client, topic string, partition int32) (int32, error) {
	ticker := time.NewTicker(syncPollInterval)
	defer ticker.Stop()
	last := "no answer yet"
	for {
		leader, state, err := partitionState(ctx, admin, topic, partition)
		if err == nil && leader >= 0 && state == "" {
			return leader, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = state
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("waiting for %s/%d to be in sync (%s): %w", topic, partition, last, ctx.Err())
		case <-ticker.C:
		}
	}
}

// partitionState returns the partition's leader and, when not every replica
// is in sync, why.
func partitionState(ctx context.Context, admin *kadm.Client, topic string, partition int32) (int32, string, error) {
	topics, err := admin.ListTopics(ctx, topic)
	if err != nil {
		return -1, "", fmt.Errorf("describe %s: %w", topic, err)
	}
	detail, found := topics[topic]
	if !found || detail.Err != nil {
		return -1, "", fmt.Errorf("describe %s: not found (%v)", topic, detail.Err)
	}
	p, found := detail.Partitions[partition]
	if !found {
		return -1, "", fmt.Errorf("%s has no partition %d", topic, partition)
	}
	if p.Err != nil {
		return -1, "", fmt.Errorf("%s/%d: %w", topic, partition, p.Err)
	}
	return p.Leader, inSyncGap(p.Replicas, p.ISR), nil
}

// inSyncGap says which replicas are not in sync, or "" when all are.
func inSyncGap(replicas, isr []int32) string {
	var missing []string
	for _, r := range replicas {
		if !slices.Contains(isr, r) {
			missing = append(missing, strconv.Itoa(int(r)))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "replicas not in sync: " + strings.Join(missing, ",")
}
