package clusterlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/txn"
)

const (
	// txnTimeoutMs is the connector's transaction.timeout.ms: a connector
	// stuck in a transaction (its node cut off) holds read_committed
	// readers back at most this long before the coordinator aborts it.
	txnTimeoutMs = 60_000
	// coordinatorWaitMax bounds the retries of a coordinator busy ending
	// the previous transaction or loading its state.
	coordinatorWaitMax = 30 * time.Second
	coordinatorRetry   = 20 * time.Millisecond
)

// TxnLog is a Log that can also write one append to several partitions as
// a Kafka transaction, so that a read_committed reader sees a database
// transaction spanning partitions whole or not at all. It is the
// transaction coordinator's client inside the node: the coordinator of a
// connector's transactional id is its __transaction_state partition's
// leader, and the log takes that leadership as it takes its partitions'.
type TxnLog struct {
	*Log
	co *txn.Coordinator

	mu        sync.Mutex
	producers map[string]*producer

	// beforeEnd, when set (tests), is called after each partition's part
	// of a transaction is appended; an error stops the transaction there,
	// as a crash between two partitions would.
	beforeEnd func(cdc.PartitionID) error
}

// producer is a transactional id's current producer id and epoch, and the
// next sequence of each partition it wrote at that epoch.
type producer struct {
	id    int64
	epoch int16
	seq   map[cdc.PartitionID]int32
}

// NewTxn returns the log of c whose atomic appends are transactions of co.
func NewTxn(c *cluster.Cluster, co *txn.Coordinator) *TxnLog {
	return &TxnLog{Log: New(c), co: co, producers: map[string]*producer{}}
}

// Fence makes the caller id's only writer: InitProducerId bumps the
// epoch, which fences an earlier writer (a connector still running on a
// node that lost it), and returns only once that writer's unfinished
// transaction ended, aborted unless its commit was already decided. The
// partitions then hold no open transaction of id, so the positions read
// next are those of committed records.
func (l *TxnLog) Fence(ctx context.Context, id string) error {
	l.mu.Lock()
	delete(l.producers, id)
	l.mu.Unlock()
	var pid int64
	var epoch int16
	err := l.retry(ctx, id, func() error {
		var err error
		pid, epoch, err = l.co.InitProducerID(id, txnTimeoutMs, -1, -1)
		return err
	})
	if err != nil {
		return fmt.Errorf("fence transactional id %s: %w", id, err)
	}
	l.mu.Lock()
	l.producers[id] = &producer{id: pid, epoch: epoch, seq: map[cdc.PartitionID]int32{}}
	l.mu.Unlock()
	return nil
}

// AppendAtomic writes the batches (a partition's in order) as one
// transaction of id and returns once its commit is decided and its records
// durable: the coordinator then writes the markers, and a restarted
// writer's Fence waits for them. On an error the transaction is left to
// the next Fence (or its timeout) to abort, and id must be fenced again.
func (l *TxnLog) AppendAtomic(ctx context.Context, id string, batches []cdc.Batch) (err error) {
	l.mu.Lock()
	pr := l.producers[id]
	l.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("transactional id %s: not fenced", id)
	}
	defer func() {
		if err != nil {
			l.mu.Lock()
			if l.producers[id] == pr {
				delete(l.producers, id)
			}
			l.mu.Unlock()
		}
	}()
	var tps []txn.TopicPartition
	seen := map[cdc.PartitionID]bool{}
	for _, b := range batches {
		if !seen[b.Partition] {
			seen[b.Partition] = true
			tps = append(tps, txn.TopicPartition{Topic: b.Partition.Topic, Partition: b.Partition.Index})
		}
	}
	// The previous transaction's markers may still be being written: the
	// coordinator answers ErrConcurrentTransactions until they are.
	if err := l.retry(ctx, id, func() error { return l.co.AddPartitions(id, pr.id, pr.epoch, tps) }); err != nil {
		return fmt.Errorf("add partitions to transaction %s: %w", id, err)
	}
	waits := make([]func(context.Context) error, 0, len(batches))
	for i, b := range batches {
		p, err := l.led(ctx, b.Partition)
		if err != nil {
			return err
		}
		if !p.TxnOpen(pr.id, pr.epoch) {
			guard, err := p.VerifyStart(pr.id)
			if err != nil {
				return err
			}
			if err := l.co.Verify(id, pr.id, pr.epoch, txn.TopicPartition{Topic: b.Partition.Topic, Partition: b.Partition.Index}); err != nil {
				p.VerifyAbandon(pr.id, guard)
				return fmt.Errorf("verify %s-%d in transaction %s: %w", b.Partition.Topic, b.Partition.Index, id, err)
			}
			if err := p.BeginTransaction(pr.id, pr.epoch, guard); err != nil {
				return err
			}
		}
		seq := pr.seq[b.Partition]
		whole, err := encodeTxn(pr, seq, b.Records)
		if err != nil {
			return err
		}
		res, err := p.Append(whole)
		if err != nil {
			return fmt.Errorf("append to %s-%d in transaction %s: %w", b.Partition.Topic, b.Partition.Index, id, err)
		}
		pr.seq[b.Partition] = seq + int32(len(b.Records))
		waits = append(waits, func(ctx context.Context) error { return p.WaitAppended(ctx, res, true) })
		last := i == len(batches)-1 || batches[i+1].Partition != b.Partition
		if last && l.beforeEnd != nil {
			if err := l.beforeEnd(b.Partition); err != nil {
				return err
			}
		}
	}
	for _, wait := range waits {
		if err := wait(ctx); err != nil {
			return err
		}
	}
	if err := l.retry(ctx, id, func() error { return l.co.End(id, pr.id, pr.epoch, true) }); err != nil {
		return fmt.Errorf("commit transaction %s: %w", id, err)
	}
	return nil
}

// encodeTxn encodes records as pr's transactional batch from sequence seq.
func encodeTxn(pr *producer, seq int32, records []batch.Record) ([]byte, error) {
	numbered := make([]batch.Record, len(records))
	for i, r := range records {
		r.Offset = int64(i)
		numbered[i] = r
	}
	tmpl := batch.Header{PartitionLeaderEpoch: -1, ProducerID: pr.id, ProducerEpoch: pr.epoch, BaseSequence: seq,
		Attributes: batch.TransactionalAttribute}
	return batch.Encode(tmpl, int32(len(records)-1), numbered, batch.None)
}

// retry calls f until it succeeds, fails for good, or coordinatorWaitMax
// passes. A coordinator that moved is led here again first: the
// transactional id's coordinator must be this node.
func (l *TxnLog) retry(ctx context.Context, id string, f func() error) error {
	clock := l.c.Env().Clock
	deadline := clock.Now().Add(coordinatorWaitMax)
	for {
		if err := l.leadCoordinator(ctx, id); err != nil {
			return err
		}
		err := f()
		retriable := errors.Is(err, txn.ErrConcurrentTransactions) || errors.Is(err, txn.ErrNotCoordinator) ||
			errors.Is(err, txn.ErrCoordinatorLoadInProgress) || errors.Is(err, txn.ErrCoordinatorNotAvailable)
		if err == nil || !retriable || !clock.Now().Before(deadline) {
			return err
		}
		t := clock.NewTimer(coordinatorRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// leadCoordinator makes this node the coordinator of id: the leader of
// its __transaction_state partition (created when missing).
func (l *TxnLog) leadCoordinator(ctx context.Context, id string) error {
	if _, err := l.co.Locate(id); err != nil {
		return err
	}
	t, ok := l.c.Topic(txn.StateTopic)
	if !ok {
		return fmt.Errorf("%w: %s missing", txn.ErrCoordinatorNotAvailable, txn.StateTopic)
	}
	_, err := l.led(ctx, cdc.PartitionID{Topic: txn.StateTopic, Index: txn.PartitionFor(id, int32(len(t.Partitions)))})
	return err
}
