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
}

// producerState is the idempotence state of every producer seen on a
// partition. It is pure: it changes only through check/record, so the same
// batches always give the same state.
type producerState struct {
	producers map[int64]*producerEntry
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

// check decides what to do with a batch from an idempotent producer: append it
// (nil, nil), answer it as the retry of an earlier batch (dup, nil), or refuse it.
func (s *producerState) check(h batch.Header) (*appendedBatch, error) {
	if h.ProducerID < 0 {
		return nil, nil
	}
	e, ok := s.producers[h.ProducerID]
	if !ok {
		// As in Kafka (KIP-360), an unknown producer may start at any
		// sequence: its state may have expired while it was idle, or gone
		// with the batches retention deleted, and it must go on writing.
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < e.Epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	case h.ProducerEpoch > e.Epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
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
	return nil, nil
}

// record remembers a batch that was appended at h.BaseOffset at nowMs.
func (s *producerState) record(h batch.Header, nowMs int64) {
	if h.ProducerID < 0 {
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
	e.Recent = append(e.Recent, appendedBatch{
		FirstSequence: h.BaseSequence,
		LastSequence:  lastSequence(h),
		BaseOffset:    h.BaseOffset,
		LastOffset:    h.LastOffset(),
	})
	if len(e.Recent) > recentBatchesMax {
		e.Recent = append(e.Recent[:0], e.Recent[len(e.Recent)-recentBatchesMax:]...)
	}
}

// expire forgets the producers that appended nothing for expirationMs up to
// nowMs, as Kafka's producer.id.expiration.ms does, so that producer state
// stays bounded by the producers active in that window. It returns how many
// it forgot. A forgotten producer that comes back is accepted at any
// sequence (see check).
func (s *producerState) expire(nowMs, expirationMs int64) int {
	n := 0
	for id, e := range s.producers {
		if nowMs-e.LastAppendMs >= expirationMs {
			delete(s.producers, id)
			n++
		}
	}
	return n
}

// clone is a deep copy, for a snapshot encoded and written without the
// writer lock while appends go on changing s.
func (s *producerState) clone() *producerState {
	c := &producerState{producers: make(map[int64]*producerEntry, len(s.producers))}
	for id, e := range s.producers {
		copied := *e
		copied.Recent = append([]appendedBatch(nil), e.Recent...)
		c.producers[id] = &copied
	}
	return c
}

// producerSnapshotVersion is part of the on-disk format of the producer-state
// file. last_append_ms was added without a new version, so that an older
// binary still reads the file: a producer without it (written before it
// existed) counts as last appending when the file is read.
const producerSnapshotVersion = 1

type producerSnapshot struct {
	Version int `json:"version"`
	// NextOffset is the log end offset the state covers: replaying batches from
	// here brings it up to date.
	NextOffset int64                    `json:"next_offset"`
	Producers  map[int64]*producerEntry `json:"producers"`
}

func (s *producerState) marshal(nextOffset int64) ([]byte, error) {
	return json.Marshal(producerSnapshot{Version: producerSnapshotVersion, NextOffset: nextOffset, Producers: s.producers})
}

// unmarshalProducerState decodes a snapshot read at nowMs.
func unmarshalProducerState(data []byte, nowMs int64) (*producerState, int64, error) {
	var snap producerSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, 0, fmt.Errorf("decode producer state: %w", err)
	}
	if snap.Version != producerSnapshotVersion {
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
