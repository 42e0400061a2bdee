package groups

import (
	"context"
	"fmt"

	"github.com/cairnlog/cairn/batch"
)

// Transactional offset commits (TxnOffsetCommit, KIP-98 and KIP-447). The
// offsets are written to the group's __consumer_offsets partition as a
// transactional batch of the producer (its id and epoch, no sequence), and
// held aside by the Machine until the transaction coordinator's marker
// reaches that partition: a COMMIT makes them the group's committed
// offsets, an ABORT drops them. A load replays the same: a transactional
// batch's offsets wait for their producer's marker in the log.

// AddTxnOffsets holds offsets committed by producerID's open transaction
// for group.
func (m *Machine) AddTxnOffsets(producerID int64, group string, offsets map[TopicPartition]OffsetCommit) {
	byGroup := m.txnPending[producerID]
	if byGroup == nil {
		byGroup = map[string]map[TopicPartition]OffsetCommit{}
		m.txnPending[producerID] = byGroup
	}
	held := byGroup[group]
	if held == nil {
		held = map[TopicPartition]OffsetCommit{}
		byGroup[group] = held
	}
	for tp, oc := range offsets {
		held[tp] = oc
	}
}

// EndTxnOffsets ends producerID's transaction for the groups owned reports
// true for (those of the offsets partition the marker was written to):
// with commit its offsets become committed, else they are dropped.
func (m *Machine) EndTxnOffsets(nowMs, producerID int64, commit bool, owned func(group string) bool) {
	byGroup := m.txnPending[producerID]
	for name, offsets := range byGroup {
		if !owned(name) {
			continue
		}
		if commit {
			m.ApplyCommit(nowMs, name, offsets)
		}
		delete(byGroup, name)
	}
	if len(byGroup) == 0 {
		delete(m.txnPending, producerID)
	}
}

// dropTxnOffsets forgets the held offsets of the groups owned reports true for.
func (m *Machine) dropTxnOffsets(owned func(group string) bool) {
	for pid, byGroup := range m.txnPending {
		for name := range byGroup {
			if owned(name) {
				delete(byGroup, name)
			}
		}
		if len(byGroup) == 0 {
			delete(m.txnPending, pid)
		}
	}
}

// txnPendingMax bounds the producers with transactional offsets held.
const txnPendingMax = 100_000

// TxnCommitOffsets writes offsets committed by producerID at producerEpoch
// within its transaction and returns once they are durable; they become
// visible (FetchOffsets) only when the transaction commits. The caller
// checked with the transaction coordinator that the group's offsets
// partition is in the producer's transaction. A request naming a member or
// generation (TxnOffsetCommit v3+, KIP-447) is checked as an OffsetCommit
// is, so a consumer fenced by a rebalance cannot commit; one naming neither
// is not. The caller confirmed the producer's verification on the offsets
// partition (partition.BeginTransaction) after the coordinator's answer.
func (co *Coordinator) TxnCommitOffsets(ctx context.Context, req CommitRequest, producerID int64, producerEpoch int16, offsets map[TopicPartition]OffsetCommit) (map[TopicPartition]error, error) {
	group := req.Group
	perPartition := map[TopicPartition]error{}
	var a appended
	var result error
	err := co.doGroup(ctx, group, func(nowMs int64) {
		if req.Generation >= 0 || req.MemberID != "" {
			if result = co.machine.CheckCommit(nowMs, req); result != nil {
				return
			}
		}
		if _, ok := co.machine.txnPending[producerID]; !ok && len(co.machine.txnPending) >= txnPendingMax {
			result = fmt.Errorf("%w: %d producers with transactional offsets pending", ErrGroupMaxSize, txnPendingMax)
			return
		}
		accepted := map[TopicPartition]OffsetCommit{}
		var records []batch.Record
		for tp, oc := range offsets {
			if err := co.machine.CheckOffsetMetadata(oc.Metadata); err != nil {
				perPartition[tp] = err
				continue
			}
			oc.CommitTimestampMs = nowMs
			accepted[tp] = oc
			records = append(records, batch.Record{Key: offsetKey(group, tp), Value: offsetValue(oc)})
		}
		if len(records) == 0 {
			return
		}
		index := co.log.indexOf(group)
		gen := co.parts[index].gen
		a, result = co.log.appendTxn(index, gen, co.parts[index].writeEpoch, producerID, producerEpoch, records, nowMs)
		if isNotLeader(result) {
			co.fence(index, gen)
			result = notCoordinator(result)
		}
		if result != nil {
			return
		}
		co.machine.AddTxnOffsets(producerID, group, accepted)
	})
	if err != nil {
		return nil, err
	}
	if result != nil {
		return nil, result
	}
	if err := co.settle(ctx, a); err != nil {
		return nil, fmt.Errorf("commit transactional offsets for %s: %w", group, err)
	}
	return perPartition, nil
}

// TxnMarker tells the coordinator that producerID's transaction was ended
// by a marker committed at offset to offsets partition index. When that
// partition is not loaded here, its next load replays the marker instead;
// while it loads, the load applies it unless its replay read it.
func (co *Coordinator) TxnMarker(ctx context.Context, index int32, offset, producerID int64, commit bool) error {
	return co.do(ctx, func(nowMs int64) {
		if int(index) >= len(co.parts) {
			return
		}
		if st := &co.parts[index]; st.state == loading {
			st.markers = append(st.markers, txnMarker{offset: offset, producerID: producerID, commit: commit})
			return
		}
		if co.parts[index].state != loaded {
			return
		}
		n := co.log.partitions
		co.machine.EndTxnOffsets(nowMs, producerID, commit, func(group string) bool { return partitionFor(group, n) == index })
	})
}

// appendTxn writes records as a transactional batch of producerID at
// producerEpoch to partition index, opening the producer's transaction
// there (the caller had the transaction coordinator confirm the partition
// is in it), in leader epoch epoch only, as append.
func (l *offsetsLog) appendTxn(index int32, gen uint64, epoch int32, producerID int64, producerEpoch int16, records []batch.Record, nowMs int64) (appended, error) {
	p, err := l.cluster.Partition(OffsetsTopic, index)
	if err != nil {
		return appended{}, fmt.Errorf("append to %s-%d: %w", OffsetsTopic, index, err)
	}
	for i := range records {
		records[i].Offset, records[i].TimestampMs = int64(i), nowMs
	}
	tmpl := batch.Header{PartitionLeaderEpoch: -1, ProducerID: producerID, ProducerEpoch: producerEpoch, BaseSequence: -1,
		Attributes: batch.TransactionalAttribute}
	whole, err := batch.Encode(tmpl, int32(len(records)-1), records, batch.None)
	if err != nil {
		return appended{}, fmt.Errorf("encode transactional offsets: %w", err)
	}
	res, err := p.AppendFromCoordinatorInTerm(whole, epoch)
	if err != nil {
		return appended{}, fmt.Errorf("append to %s-%d: %w", OffsetsTopic, index, err)
	}
	a := appended{partition: p, res: res, index: index, gen: gen}
	l.lastAppended[index] = a
	return a, nil
}

// restoreTxnBatch replays a transactional batch or a marker of the offsets
// log into m: offsets held for the producer, or its transaction ended.
func restoreTxnBatch(m *Machine, h batch.Header, records []batch.Record) error {
	if h.Control() {
		typ, err := batch.MarkerType(records)
		if err != nil {
			return err
		}
		if typ == batch.ControlCommit || typ == batch.ControlAbort {
			m.EndTxnOffsets(h.MaxTimestamp, h.ProducerID, typ == batch.ControlCommit, func(string) bool { return true })
		}
		return nil
	}
	for _, r := range records {
		restored := NewMachine(m.cfg, "")
		if err := restoreRecord(restored, r.Key, r.Value); err != nil {
			return err
		}
		for name, g := range restored.groups {
			m.AddTxnOffsets(h.ProducerID, name, g.offsets)
		}
	}
	return nil
}
