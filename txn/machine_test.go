package txn

import (
	"errors"
	"fmt"
	"testing"
)

func testMachine() *Machine {
	cfg := DefaultConfig()
	cfg.TransactionsMax, cfg.PartitionsPerTransactionMax = 3, 2
	return NewMachine(cfg)
}

// ids hands out producer ids from 100 on.
func ids() func() (int64, error) {
	next := int64(100)
	return func() (int64, error) { next++; return next - 1, nil }
}

// step applies a decision's metadata as the driver does once it is durable.
func step(t *testing.T, m *Machine, id string, d Decision) Decision {
	t.Helper()
	if d.Next != nil {
		m.Apply(id, d.Next)
	}
	return d
}

var (
	tpA = TopicPartition{Topic: "a", Partition: 0}
	tpB = TopicPartition{Topic: "b", Partition: 1}
	tpC = TopicPartition{Topic: "c", Partition: 2}
)

// TestMachineTransitions walks one transactional id through every state
// change, each row checking the error, the state persisted and the
// producer epoch.
func TestMachineTransitions(t *testing.T) {
	m := testMachine()
	newID := ids()
	rows := []struct {
		name  string
		do    func(nowMs int64) Decision
		err   error
		state State // after the step; -1: no change persisted
		epoch int16
		pid   int64
		parts int
		nowMs int64
	}{
		{"init a new id", func(now int64) Decision { return m.Init("t", 1000, -1, -1, now, newID) }, nil, Empty, 0, 100, 0, 1},
		{"end with nothing ongoing", func(now int64) Decision { return m.End("t", 100, 0, true, now) }, ErrInvalidTxnState, -1, 0, 100, 0, 2},
		{"add from a stale epoch", func(now int64) Decision { return m.AddPartitions("t", 100, -1, []TopicPartition{tpA}, now) }, ErrProducerFenced, -1, 0, 100, 0, 3},
		{"add from another producer id", func(now int64) Decision { return m.AddPartitions("t", 7, 0, []TopicPartition{tpA}, now) }, ErrInvalidProducerIDMapping, -1, 0, 100, 0, 3},
		{"add partitions starts the transaction", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpA}, now) }, nil, Ongoing, 0, 100, 1, 4},
		{"adding it again persists nothing", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpA}, now) }, nil, -1, 0, 100, 1, 5},
		{"add a second partition", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpB}, now) }, nil, Ongoing, 0, 100, 2, 6},
		{"past the partitions limit", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpC}, now) }, ErrInvalidRequest, -1, 0, 100, 2, 7},
		{"commit prepares", func(now int64) Decision { return m.End("t", 100, 0, true, now) }, nil, PrepareCommit, 0, 100, 2, 8},
		{"a retry while markers are written waits", func(now int64) Decision { return m.End("t", 100, 0, true, now) }, ErrConcurrentTransactions, -1, 0, 100, 2, 9},
		{"abort while committing", func(now int64) Decision { return m.End("t", 100, 0, false, now) }, ErrInvalidTxnState, -1, 0, 100, 2, 9},
		{"add while committing waits", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpA}, now) }, ErrConcurrentTransactions, -1, 0, 100, 2, 9},
		{"init while committing waits", func(now int64) Decision { return m.Init("t", 1000, 100, 0, now, newID) }, ErrConcurrentTransactions, -1, 0, 100, 2, 9},
		{"markers written: complete", func(now int64) Decision { next, _ := m.Complete("t", 0, now); return Decision{Next: next} }, nil, CompleteCommit, 0, 100, 0, 10},
		{"a retried commit after completion succeeds", func(now int64) Decision { return m.End("t", 100, 0, true, now) }, nil, -1, 0, 100, 0, 11},
		{"next transaction", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpC}, now) }, nil, Ongoing, 0, 100, 1, 12},
		{"abort prepares", func(now int64) Decision { return m.End("t", 100, 0, false, now) }, nil, PrepareAbort, 0, 100, 1, 13},
		{"complete abort", func(now int64) Decision { next, _ := m.Complete("t", 0, now); return Decision{Next: next} }, nil, CompleteAbort, 0, 100, 0, 14},
		{"re-init bumps the epoch", func(now int64) Decision { return m.Init("t", 1000, 100, 0, now, newID) }, nil, Empty, 1, 100, 0, 15},
		{"a retried re-init gets the same epoch", func(now int64) Decision { return m.Init("t", 1000, 100, 0, now, newID) }, nil, -1, 1, 100, 0, 16},
		{"the old epoch is fenced", func(now int64) Decision { return m.AddPartitions("t", 100, 0, []TopicPartition{tpA}, now) }, ErrProducerFenced, -1, 1, 100, 0, 17},
		{"a stale id and epoch at init is fenced", func(now int64) Decision { return m.Init("t", 1000, 100, 5, now, newID) }, ErrProducerFenced, -1, 1, 100, 0, 18},
		{"ongoing at epoch 1", func(now int64) Decision { return m.AddPartitions("t", 100, 1, []TopicPartition{tpA}, now) }, nil, Ongoing, 1, 100, 1, 19},
		{"a new producer's init aborts the ongoing transaction with the epoch bumped", func(now int64) Decision { return m.Init("t", 1000, -1, -1, now, newID) }, ErrConcurrentTransactions, PrepareAbort, 2, 100, 1, 20},
		{"the producer of epoch 1 is fenced at commit", func(now int64) Decision { return m.End("t", 100, 1, true, now) }, ErrProducerFenced, -1, 2, 100, 1, 21},
		{"abort completes", func(now int64) Decision { next, _ := m.Complete("t", 2, now); return Decision{Next: next} }, nil, CompleteAbort, 2, 100, 0, 22},
		{"the init retried now gets epoch 3", func(now int64) Decision { return m.Init("t", 1000, -1, -1, now, newID) }, nil, Empty, 3, 100, 0, 23},
		{"a timeout above the maximum", func(now int64) Decision { return m.Init("t", 1<<30, -1, -1, now, newID) }, ErrInvalidTransactionTimeout, -1, 3, 100, 0, 24},
		{"an empty id", func(now int64) Decision { return m.Init("", 1000, -1, -1, now, newID) }, ErrInvalidRequest, -1, 3, 100, 0, 24},
	}
	for _, r := range rows {
		d := step(t, m, "t", r.do(r.nowMs))
		if !errors.Is(d.Err, r.err) {
			t.Fatalf("%s: err %v, want %v", r.name, d.Err, r.err)
		}
		if r.state < 0 && d.Next != nil {
			t.Fatalf("%s: persisted %+v, want nothing", r.name, *d.Next)
		}
		if r.state >= 0 && (d.Next == nil || d.Next.State != r.state) {
			t.Fatalf("%s: persisted %+v, want state %v", r.name, d.Next, r.state)
		}
		cur, _ := m.Get("t")
		if cur.ProducerEpoch != r.epoch || cur.ProducerID != r.pid || len(cur.Partitions) != r.parts {
			t.Fatalf("%s: now %+v, want producer %d epoch %d with %d partitions", r.name, cur, r.pid, r.epoch, r.parts)
		}
	}
}

// TestMachineTimeouts: only ongoing transactions expire, at their start
// plus timeout, and the coordinator's abort fences the producer.
func TestMachineTimeouts(t *testing.T) {
	m := testMachine()
	newID := ids()
	step(t, m, "slow", m.Init("slow", 100, -1, -1, 0, newID))
	step(t, m, "idle", m.Init("idle", 100, -1, -1, 0, newID))
	step(t, m, "slow", m.AddPartitions("slow", 100, 0, []TopicPartition{tpA}, 50))
	if got := m.Expired(149); len(got) != 0 {
		t.Fatalf("expired before the timeout: %v", got)
	}
	if got := fmt.Sprint(m.Expired(150)); got != "[slow]" {
		t.Fatalf("expired at the timeout: %s, want [slow] (idle has no transaction)", got)
	}
	d := step(t, m, "slow", m.Abort("slow", 150))
	if d.Err != nil || d.Next.State != PrepareAbort || d.Next.ProducerEpoch != 1 {
		t.Fatalf("abort: %+v %v", d.Next, d.Err)
	}
	if got := m.Expired(10_000); len(got) != 0 {
		t.Fatalf("an aborting transaction expired again: %v", got)
	}
	if d := m.Abort("idle", 150); d.Next != nil || d.Err != nil {
		t.Fatalf("abort of a transaction not ongoing: %+v", d)
	}
	if e := m.Ending(); len(e) != 1 || e[0].ID != "slow" {
		t.Fatalf("ending: %+v", e)
	}
	if d := m.AddPartitions("slow", 100, 0, []TopicPartition{tpA}, 200); !errors.Is(d.Err, ErrProducerFenced) {
		t.Fatalf("the timed-out producer: %v, want fenced", d.Err)
	}
}

// TestMachineLimitsAndVerify: the coordinator holds at most
// TransactionsMax ids, and Contains answers KIP-890's verification.
func TestMachineLimitsAndVerify(t *testing.T) {
	m := testMachine()
	newID := ids()
	for _, id := range []string{"x", "y", "z"} {
		step(t, m, id, m.Init(id, 100, -1, -1, 0, newID))
	}
	if d := m.Init("w", 100, -1, -1, 0, newID); !errors.Is(d.Err, ErrTooManyTransactions) {
		t.Fatalf("a fourth id: %v", d.Err)
	}
	x, _ := m.Get("x")
	if err := m.Contains("x", x.ProducerID, 0, tpA); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("verify before add: %v", err)
	}
	step(t, m, "x", m.AddPartitions("x", x.ProducerID, 0, []TopicPartition{tpA}, 1))
	if err := m.Contains("x", x.ProducerID, 0, tpA); err != nil {
		t.Fatalf("verify after add: %v", err)
	}
	if err := m.Contains("x", x.ProducerID, 0, tpB); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("verify a partition not added: %v", err)
	}
	if err := m.Contains("x", x.ProducerID, 1, tpA); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("verify with another epoch: %v", err)
	}
	if n := m.Unload(func(id string) bool { return id != "y" }); n != 2 || fmt.Sprint(m.IDs()) != "[y]" {
		t.Fatalf("unload: %d, left %v", n, m.IDs())
	}
}

// TestMachineIdleExpiry: ids with no transaction in progress expire
// IDExpirationMs after their last change; ongoing or ending ones never do.
func TestMachineIdleExpiry(t *testing.T) {
	m := testMachine()
	m.cfg.IDExpirationMs = 1000
	newID := ids()
	step(t, m, "idle", m.Init("idle", 100, -1, -1, 0, newID))
	step(t, m, "busy", m.Init("busy", 100_000, -1, -1, 0, newID))
	busy, _ := m.Get("busy")
	step(t, m, "busy", m.AddPartitions("busy", busy.ProducerID, 0, []TopicPartition{tpA}, 10))
	if got := m.IdleExpired(999); len(got) != 0 {
		t.Fatalf("expired early: %v", got)
	}
	if got := fmt.Sprint(m.IdleExpired(5000)); got != "[idle]" {
		t.Fatalf("expired at 5000: %s, want [idle] (busy has a transaction ongoing)", got)
	}
}
