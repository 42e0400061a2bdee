package partition

import (
	"fmt"
	"sort"

	"github.com/cairnlog/cairn/batch"
)

// Transactions on a partition. Producer state (producer.go) knows each
// producer's open transaction and the aborted-transaction index; this file
// publishes what readers need of them (the last stable offset and the
// aborted list) without the writer lock, keeps the coordinator's
// verifications (KIP-890), and writes the markers that end transactions.

// marker is what a batch ends: nothing (a data batch), or a transaction by
// an ABORT or COMMIT control record, with the coordinator epoch it carries.
type marker struct {
	kind             markerKind
	coordinatorEpoch int32
}

type markerKind int8

const (
	markerNone markerKind = iota
	markerAbort
	markerCommit
)

// AbortedTxn is one entry of the aborted-transaction index: producer
// ProducerID's transaction that began at FirstOffset and whose ABORT
// marker is at LastOffset. A read_committed consumer drops that producer's
// records from FirstOffset until it reads the marker.
type AbortedTxn struct {
	ProducerID  int64 `json:"producer_id"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

// endedTxn is a transaction whose marker the single writer appended, until
// the high watermark passes the marker: its records stay unstable until
// the marker is durable, as a crash would take the marker back.
type endedTxn struct {
	first, marker int64
}

// txnView is what readers see of the transactions, replaced whole (never
// changed) by the writer under mu after every change.
type txnView struct {
	firstOpen int64 // first offset of the oldest open transaction, -1 when none
	aborted   []AbortedTxn
	ends      []endedTxn
}

// verifiedMax bounds the coordinator's verifications kept per partition:
// one per transaction open on it, ended by its marker.
const verifiedMax = 100_000

// markerOf returns what the batch whole (header h) ends.
func markerOf(h batch.Header, whole []byte, lim batch.Limits) (marker, error) {
	if !h.Control() {
		return marker{}, nil
	}
	recs, err := batch.Records(whole, lim)
	if err != nil {
		return marker{}, fmt.Errorf("control batch at offset %d: %w", h.BaseOffset, err)
	}
	typ, err := batch.MarkerType(recs)
	if err != nil {
		return marker{}, fmt.Errorf("control batch at offset %d: %w", h.BaseOffset, err)
	}
	var m marker
	switch typ {
	case batch.ControlAbort:
		m.kind = markerAbort
	case batch.ControlCommit:
		m.kind = markerCommit
	default:
		// Other control types (Kafka's KRaft records) end no transaction.
		return marker{}, nil
	}
	// A value other than Kafka's leaves the epoch unknown (-1), not the
	// marker; such a marker is then fenced once a producer's last marker
	// carried an epoch (producerState.check).
	if m.coordinatorEpoch, err = batch.MarkerCoordinatorEpoch(recs); err != nil {
		m.coordinatorEpoch = -1
	}
	return m, nil
}

// recordTxn records the batch whole (header h, appended at nowMs) in
// producer state and, when it opened or ended a transaction, publishes the
// change to readers. Callers hold mu.
func (p *Partition) recordTxn(h batch.Header, kind marker, nowMs int64) {
	var first int64 = -1
	if h.Control() && h.ProducerID >= 0 {
		if e, ok := p.producers.producers[h.ProducerID]; ok && e.TxnFirstOffset != nil && h.ProducerEpoch >= e.Epoch {
			first = *e.TxnFirstOffset
		}
	}
	opens := h.Transactional() && !h.Control() && h.ProducerID >= 0 && !p.producers.open(h.ProducerID)
	p.producers.recordBatch(h, kind, nowMs)
	switch {
	case first >= 0:
		p.publishTxns(&endedTxn{first: first, marker: h.BaseOffset})
	case opens:
		p.publishTxns(nil)
	}
}

// publishTxns replaces the readers' view of the transactions with producer
// state's, adding ended to the transactions whose marker is not yet below
// the high watermark. Callers hold mu.
func (p *Partition) publishTxns(ended *endedTxn) {
	hwm := p.HighWatermark()
	v := &txnView{firstOpen: p.producers.firstOpen(), aborted: p.producers.aborted}
	if old := p.txns.Load(); old != nil {
		for _, e := range old.ends {
			if e.marker >= hwm {
				v.ends = append(v.ends, e)
			}
		}
	}
	if ended != nil {
		v.ends = append(v.ends, *ended)
	}
	p.txns.Store(v)
}

// LastStableOffset is the offset read_committed consumers read up to: the
// first offset of the oldest transaction not yet ended by a durable marker,
// else the high watermark.
func (p *Partition) LastStableOffset() int64 {
	hwm := p.HighWatermark()
	return p.txns.Load().stableOffset(hwm, p.log.StartOffset())
}

// stableOffset is the last stable offset under the high watermark hwm. It
// is never below the log start: a transaction whose first batches
// retention or DeleteRecords removed holds consumers at the log start, as
// in Kafka, rather than at an offset no fetch can reach.
func (v *txnView) stableOffset(hwm, logStart int64) int64 {
	lso := hwm
	if v == nil {
		return lso
	}
	if v.firstOpen >= 0 && v.firstOpen < lso {
		lso = v.firstOpen
	}
	for _, e := range v.ends {
		if e.marker >= hwm && e.first < lso {
			lso = e.first
		}
	}
	return min(max(lso, logStart), hwm)
}

// AbortedTransactions lists the aborted transactions that overlap the
// offsets [from, to): those whose marker is at or after from and that
// began before to, oldest marker first.
func (p *Partition) AbortedTransactions(from, to int64) []AbortedTxn {
	v := p.txns.Load()
	if v == nil {
		return nil
	}
	i := sort.Search(len(v.aborted), func(i int) bool { return v.aborted[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range v.aborted[i:] {
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// verification is a producer's transaction being verified with, or
// confirmed by, its coordinator (KIP-890).
type verification struct {
	guard     uint64
	confirmed bool
	epoch     int16 // once confirmed
}

// VerifyStart opens the verification of producerID's transaction here,
// before the caller asks the coordinator whether the partition is in it,
// and returns its guard. A marker for the producer written meanwhile ends
// the verification, so a coordinator's yes that was true before the
// marker cannot open a transaction after it (Kafka's verification guard).
func (p *Partition) VerifyStart(producerID int64) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	if p.verified == nil {
		p.verified = map[int64]verification{}
	}
	if v, ok := p.verified[producerID]; ok {
		return v.guard, nil
	}
	if len(p.verified) >= verifiedMax {
		return 0, fmt.Errorf("%w: %s-%d has %d transactions being verified", ErrInvalidTxnState, p.topic, p.index, verifiedMax)
	}
	p.guards++
	p.verified[producerID] = verification{guard: p.guards}
	return p.guards, nil
}

// BeginTransaction confirms the verification guard opened: the
// transaction coordinator said the partition is in producerID's ongoing
// transaction at producerEpoch, so the producer's first transactional
// batch here may open it. It fails with ErrInvalidTxnState when a marker
// ended the verification since VerifyStart. On a replicated partition it
// is the leader's, which checks batches; a new leader knows none, and the
// produce path verifies again there.
func (p *Partition) BeginTransaction(producerID int64, producerEpoch int16, guard uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.verified[producerID]
	if !ok && guard <= p.guardsDropped {
		// A leadership change dropped it: the client retries where the
		// partition leads, and is verified again there.
		return fmt.Errorf("%w: %s-%d: the leadership changed while producer %d's transaction was verified", ErrNotLeader, p.topic, p.index, producerID)
	}
	if !ok || v.guard != guard {
		return fmt.Errorf("%w: %s-%d: producer %d's transaction ended while it was verified", ErrInvalidTxnState, p.topic, p.index, producerID)
	}
	v.confirmed, v.epoch = true, producerEpoch
	p.verified[producerID] = v
	return nil
}

// VerifyAbandon forgets a verification the coordinator refused.
func (p *Partition) VerifyAbandon(producerID int64, guard uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.verified[producerID]; ok && v.guard == guard && !v.confirmed {
		delete(p.verified, producerID)
	}
}

// verifiedLocked reports whether the coordinator began h's producer's
// transaction here at h's epoch. Callers hold mu.
func (p *Partition) verifiedLocked(h batch.Header) bool {
	v, ok := p.verified[h.ProducerID]
	return ok && v.confirmed && v.epoch == h.ProducerEpoch
}

// WriteMarker appends the marker that ends producerID's transaction on
// this partition (commit or abort), as the transaction coordinator does
// for every partition of a transaction (Kafka's WriteTxnMarkers). It ends
// the producer's verification first, confirmed or in flight, so that a
// late batch of the transaction is refused rather than open a new one. A marker for a
// producer without an open transaction here is written all the same (a
// coordinator retrying markers after a failover writes some twice) and
// changes nothing. Callers wait for it like an acks=all produce.
func (p *Partition) WriteMarker(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) (AppendResult, error) {
	p.mu.Lock()
	delete(p.verified, producerID)
	p.mu.Unlock()
	typ := batch.ControlAbort
	if commit {
		typ = batch.ControlCommit
	}
	whole := batch.EncodeMarker(producerID, producerEpoch, typ, coordinatorEpoch, p.clock.Now().UnixMilli())
	return p.append(whole, true, anyTerm)
}

// open reports whether producerID has a transaction open.
func (s *producerState) open(producerID int64) bool {
	e, ok := s.producers[producerID]
	return ok && e.TxnFirstOffset != nil
}

// firstOpen is the first offset of the oldest open transaction, -1 when
// none.
func (s *producerState) firstOpen() int64 {
	first := int64(-1)
	for _, e := range s.producers {
		if e.TxnFirstOffset != nil && (first < 0 || *e.TxnFirstOffset < first) {
			first = *e.TxnFirstOffset
		}
	}
	return first
}

// trimAborted forgets the aborted transactions whose marker is below
// logStart: no fetch can reach them.
func (s *producerState) trimAborted(logStart int64) {
	i := sort.Search(len(s.aborted), func(i int) bool { return s.aborted[i].LastOffset >= logStart })
	if i > 0 {
		s.aborted = s.aborted[i:]
	}
}

// dropAborted forgets the aborted transactions whose marker is at one of
// markers' offsets, and reports whether there was one. The index is
// copied, never changed in place: readers hold the previous one.
func (s *producerState) dropAborted(markers map[int64]bool) bool {
	kept := make([]AbortedTxn, 0, len(s.aborted))
	for _, a := range s.aborted {
		if !markers[a.LastOffset] {
			kept = append(kept, a)
		}
	}
	if len(kept) == len(s.aborted) {
		return false
	}
	s.aborted = kept
	return true
}

// ProducerInfo is what the partition knows of one producer, for
// DescribeProducers.
type ProducerInfo struct {
	ProducerID     int64
	ProducerEpoch  int16
	LastSequence   int32
	LastAppendMs   int64
	TxnFirstOffset int64 // -1 when no transaction is open
	// CoordinatorEpoch is the one the producer's last marker here
	// carried, -1 when none.
	CoordinatorEpoch int32
}

// Producers lists the producers the partition knows, by id.
func (p *Partition) Producers() []ProducerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProducerInfo, 0, len(p.producers.producers))
	for _, id := range p.producers.ids() {
		e := p.producers.producers[id]
		info := ProducerInfo{ProducerID: id, ProducerEpoch: e.Epoch, LastSequence: -1, LastAppendMs: e.LastAppendMs, TxnFirstOffset: -1, CoordinatorEpoch: -1}
		if len(e.Recent) > 0 {
			info.LastSequence = e.Recent[len(e.Recent)-1].LastSequence
		}
		if e.TxnFirstOffset != nil {
			info.TxnFirstOffset = *e.TxnFirstOffset
		}
		if e.CoordinatorEpoch != nil {
			info.CoordinatorEpoch = *e.CoordinatorEpoch
		}
		out = append(out, info)
	}
	return out
}

// TxnOpen reports whether producerID has a transaction open here at
// producerEpoch, or one the coordinator began here: its batches need no
// verification with the coordinator.
func (p *Partition) TxnOpen(producerID int64, producerEpoch int16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.verified[producerID]; ok && v.confirmed && v.epoch == producerEpoch {
		return true
	}
	e, ok := p.producers.producers[producerID]
	return ok && e.Epoch == producerEpoch && e.TxnFirstOffset != nil
}
