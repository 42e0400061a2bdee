package partition

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/cairnlog/cairn/batch"
)

// recentBatchesMax is how many appended batches per producer are remembered to
// recognise retries; Kafka clients keep at most five requests in flight per
// partition when idempotence is on, so five covers every possible retry.
const recentBatchesMax = 5

// appendedBatch is what a retry of the same batch must be answered with.
type appendedBatch struct {
	FirstSequence int32 `json:"first_sequence"`
	LastSequence  int32 `json:"last_sequence"`
	BaseOffset    int64 `json:"base_offset"`
	LastOffset    int64 `json:"last_offset"`
}

type producerEntry struct {
	Epoch  int16           `json:"epoch"`
	Recent []appendedBatch `json:"recent"` // oldest first
	// LastAppendMs is the broker time of the producer's last append; for a
	// batch replayed from the log at open, the time of the open. Idle
	// producers expire from it (see expire).
	LastAppendMs int64 `json:"last_append_ms"`
	// TxnFirstOffset is the offset of the first batch of the producer's
	// ongoing transaction (at Epoch), nil when none: the last stable
	// offset cannot pass it until a marker ends the transaction.
	TxnFirstOffset *int64 `json:"txn_first_offset,omitempty"`
	// CoordinatorEpoch is the coordinator epoch of the last marker that
	// ended one of the producer's transactions here, nil when none did
	// (DescribeProducers reports -1 then, as Kafka).
	CoordinatorEpoch *int32 `json:"coordinator_epoch,omitempty"`
}

// producerState is the idempotence state of every producer seen on a
// partition. It is pure: it changes only through check/record, so the same
// batches always give the same state.
type producerState struct {
	producers map[int64]*producerEntry
	// aborted is the aborted-transaction index: every transaction an ABORT
	// marker ended, in marker order (so by LastOffset), for read_committed
	// fetches to tell clients which records to drop. Entries whose marker
	// is below the log start go at checkpoints (trimAborted).
	aborted []AbortedTxn
}

func newProducerState() *producerState {
	return &producerState{producers: map[int64]*producerEntry{}}
}

// lastSequence is the sequence of a batch's last record; sequences wrap from
// MaxInt32 to 0 as in Kafka.
func lastSequence(h batch.Header) int32 {
	if int64(h.BaseSequence)+int64(h.LastOffsetDelta) > math.MaxInt32 {
		return int32(int64(h.BaseSequence) + int64(h.LastOffsetDelta) - math.MaxInt32 - 1)
	}
	return h.BaseSequence + h.LastOffsetDelta
}

func nextSequence(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

// check decides what to do with a batch from an idempotent or
// transactional producer: append it (nil, nil), answer it as the retry of
// an earlier batch (dup, nil), or refuse it. verified says the transaction
// coordinator added this partition to the producer's transaction at
// h.ProducerEpoch (BeginTransaction): only then may a transactional batch
// start a transaction here (KIP-890), so a late batch of a transaction
// already ended by its marker is refused instead of opening a new one that
// no coordinator would ever end. kind is what a control batch ends: a
// marker whose coordinator epoch is below the one of the producer's last
// marker here comes from a coordinator a newer one replaced (Kafka's
// TRANSACTION_COORDINATOR_FENCED), which may still be retrying the markers
// of a transaction the newer one ended, and would end the producer's next
// transaction here.
func (s *producerState) check(h batch.Header, kind marker, verified bool) (*appendedBatch, error) {
	if h.ProducerID < 0 {
		return nil, nil
	}
	e, ok := s.producers[h.ProducerID]
	if h.Control() {
		switch {
		case ok && h.ProducerEpoch < e.Epoch:
			return nil, fmt.Errorf("%w: marker for producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
		case ok && kind.kind != markerNone && e.CoordinatorEpoch != nil && kind.coordinatorEpoch < *e.CoordinatorEpoch:
			return nil, fmt.Errorf("%w: marker for producer %d from coordinator epoch %d, last %d",
				ErrTransactionCoordinatorFenced, h.ProducerID, kind.coordinatorEpoch, *e.CoordinatorEpoch)
		}
		return nil, nil
	}
	if !ok {
		// As in Kafka (KIP-360), an unknown producer may start at any
		// sequence: its state may have expired while it was idle, or gone
		// with the batches retention deleted, and it must go on writing.
		return nil, checkTxn(h, nil, verified)
	}
	switch {
	case h.ProducerEpoch < e.Epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	case h.BaseSequence < 0:
		// A coordinator's batch (transactional offsets): no sequence.
		if h.ProducerEpoch > e.Epoch {
			e = nil
		}
		return nil, checkTxn(h, e, verified)
	case h.ProducerEpoch > e.Epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		if e.TxnFirstOffset != nil {
			return nil, fmt.Errorf("%w: producer %d epoch %d still has a transaction open at offset %d",
				ErrInvalidTxnState, h.ProducerID, e.Epoch, *e.TxnFirstOffset)
		}
		return nil, checkTxn(h, nil, verified)
	}
	last := lastSequence(h)
	for i := range e.Recent {
		if e.Recent[i].FirstSequence == h.BaseSequence && e.Recent[i].LastSequence == last {
			dup := e.Recent[i]
			return &dup, nil
		}
	}
	if len(e.Recent) > 0 {
		want := nextSequence(e.Recent[len(e.Recent)-1].LastSequence)
		if h.BaseSequence != want {
			return nil, fmt.Errorf("%w: producer %d epoch %d expected sequence %d, got %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, want, h.BaseSequence)
		}
	}
	return nil, checkTxn(h, e, verified)
}

// checkTxn refuses a transactional batch that would start a transaction
// the coordinator did not begin here, and a plain batch from a producer
// whose transaction is open, as Kafka does (INVALID_TXN_STATE).
func checkTxn(h batch.Header, e *producerEntry, verified bool) error {
	open := e != nil && e.TxnFirstOffset != nil
	switch {
	case h.Transactional() && !open && !verified:
		return fmt.Errorf("%w: producer %d epoch %d has no transaction open on this partition",
			ErrInvalidTxnState, h.ProducerID, h.ProducerEpoch)
	case !h.Transactional() && open:
		return fmt.Errorf("%w: a non-transactional batch from producer %d, whose transaction is open",
			ErrInvalidTxnState, h.ProducerID)
	}
	return nil
}

// record remembers a data batch that was appended at h.BaseOffset at nowMs.
func (s *producerState) record(h batch.Header, nowMs int64) {
	s.recordBatch(h, marker{}, nowMs)
}

// recordBatch remembers a batch appended at h.BaseOffset at nowMs; kind is
// the marker a control batch carries (none for data).
func (s *producerState) recordBatch(h batch.Header, kind marker, nowMs int64) {
	if h.ProducerID < 0 {
		return
	}
	if h.Control() {
		s.recordMarker(h, kind, nowMs)
		return
	}
	e, ok := s.producers[h.ProducerID]
	if !ok || h.ProducerEpoch > e.Epoch {
		e = &producerEntry{Epoch: h.ProducerEpoch}
		s.producers[h.ProducerID] = e
	} else if h.ProducerEpoch < e.Epoch {
		return // an older epoch replayed from the log; the newer one already fenced it
	}
	e.LastAppendMs = nowMs
	if h.BaseSequence >= 0 {
		e.Recent = append(e.Recent, appendedBatch{
			FirstSequence: h.BaseSequence,
			LastSequence:  lastSequence(h),
			BaseOffset:    h.BaseOffset,
			LastOffset:    h.LastOffset(),
		})
	}
	if len(e.Recent) > recentBatchesMax {
		e.Recent = append(e.Recent[:0], e.Recent[len(e.Recent)-recentBatchesMax:]...)
	}
	if h.Transactional() && e.TxnFirstOffset == nil {
		first := h.BaseOffset
		e.TxnFirstOffset = &first
	}
}

// recordMarker ends the producer's open transaction with the marker at
// h.BaseOffset; an ABORT enters it in the aborted index. A marker of a
// newer epoch (the coordinator fenced the producer) makes that epoch the
// producer's current one, with no sequence known yet.
func (s *producerState) recordMarker(h batch.Header, kind marker, nowMs int64) {
	e, ok := s.producers[h.ProducerID]
	if !ok {
		e = &producerEntry{Epoch: h.ProducerEpoch}
		s.producers[h.ProducerID] = e
	}
	if h.ProducerEpoch < e.Epoch {
		return // replayed from the log: the newer epoch already ended it
	}
	if e.TxnFirstOffset != nil && kind.kind == markerAbort {
		s.aborted = append(s.aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: *e.TxnFirstOffset, LastOffset: h.BaseOffset})
	}
	e.TxnFirstOffset = nil
	if h.ProducerEpoch > e.Epoch {
		e.Epoch, e.Recent = h.ProducerEpoch, nil
	}
	if kind.kind != markerNone {
		epoch := kind.coordinatorEpoch
		e.CoordinatorEpoch = &epoch
	}
	e.LastAppendMs = nowMs
}

// expire forgets the producers that appended nothing for expirationMs up to
// nowMs, as Kafka's producer.id.expiration.ms does, so that producer state
// stays bounded by the producers active in that window. It returns how many
// it forgot. A forgotten producer that comes back is accepted at any
// sequence (see check).
func (s *producerState) expire(nowMs, expirationMs int64) int {
	n := 0
	for id, e := range s.producers {
		// A producer with an open transaction stays, whatever its age:
		// forgetting it would forget where the transaction started, and
		// the coordinator's timeout ends it with a marker.
		if nowMs-e.LastAppendMs >= expirationMs && e.TxnFirstOffset == nil {
			delete(s.producers, id)
			n++
		}
	}
	return n
}

// forgetAllBut forgets every producer that neither kept nor pending
// names: a leader's overlay following what its applied state expired.
func (s *producerState) forgetAllBut(kept *producerState, pending map[int64]bool) {
	for id := range s.producers {
		if kept.producers[id] == nil && !pending[id] {
			delete(s.producers, id)
		}
	}
}

// clone is a deep copy, for a snapshot encoded and written without the
// writer lock while appends go on changing s.
func (s *producerState) clone() *producerState {
	c := &producerState{producers: make(map[int64]*producerEntry, len(s.producers))}
	for id, e := range s.producers {
		copied := *e
		copied.Recent = append([]appendedBatch(nil), e.Recent...)
		if e.TxnFirstOffset != nil {
			first := *e.TxnFirstOffset
			copied.TxnFirstOffset = &first
		}
		if e.CoordinatorEpoch != nil {
			epoch := *e.CoordinatorEpoch
			copied.CoordinatorEpoch = &epoch
		}
		c.producers[id] = &copied
	}
	// Entries are only ever appended or cut from the front: sharing the
	// array up to len is safe, and the cap stops c's appends from
	// writing into s's.
	c.aborted = s.aborted[:len(s.aborted):len(s.aborted)]
	return c
}

// producerSnapshotVersion is part of the on-disk format of the producer-state
// file. last_append_ms was added without a new version, so that an older
// binary still reads the file: a producer without it (written before it
// existed) counts as last appending when the file is read; nor was
// coordinator_epoch, which an older binary ignores. Version 2 adds
// open transactions (txn_first_offset) and the aborted index (aborted): an
// older binary must not read it and serve read_committed fetches without
// them. Version 1 files are still read (no transactions then).
const producerSnapshotVersion = 2

type producerSnapshot struct {
	Version int `json:"version"`
	// NextOffset is the log end offset the state covers: replaying batches from
	// here brings it up to date.
	NextOffset int64                    `json:"next_offset"`
	Producers  map[int64]*producerEntry `json:"producers"`
	Aborted    []AbortedTxn             `json:"aborted,omitempty"`
}

func (s *producerState) marshal(nextOffset int64) ([]byte, error) {
	return json.Marshal(producerSnapshot{Version: producerSnapshotVersion, NextOffset: nextOffset, Producers: s.producers, Aborted: s.aborted})
}

// unmarshalProducerState decodes a snapshot read at nowMs.
func unmarshalProducerState(data []byte, nowMs int64) (*producerState, int64, error) {
	var snap producerSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, 0, fmt.Errorf("decode producer state: %w", err)
	}
	if snap.Version != producerSnapshotVersion && snap.Version != 1 {
		return nil, 0, fmt.Errorf("producer state version %d: unsupported", snap.Version)
	}
	s := newProducerState()
	for id, e := range snap.Producers {
		if e == nil {
			continue
		}
		if e.LastAppendMs <= 0 {
			e.LastAppendMs = nowMs
		}
		s.producers[id] = e
	}
	s.aborted = snap.Aborted
	return s, snap.NextOffset, nil
}

// lastOffsets maps every producer to the last offset of its last batch.
func (s *producerState) lastOffsets() map[int64]int64 {
	out := make(map[int64]int64, len(s.producers))
	for id, e := range s.producers {
		if len(e.Recent) > 0 {
			out[id] = e.Recent[len(e.Recent)-1].LastOffset
		}
	}
	return out
}

// ids returns the producer ids known, sorted, for deterministic tests and dumps.
func (s *producerState) ids() []int64 {
	out := make([]int64, 0, len(s.producers))
	for id := range s.producers {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
