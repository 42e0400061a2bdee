package partition

import (
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
)

// Clean applies the topic's cleanup policy once: retention deletes whole old
// segments, compaction rewrites sealed segments keeping the newest record per
// key. The cluster's cleaner goroutine calls it periodically.
func (p *Partition) Clean(nowMs int64) error {
	if p.Err() != nil {
		return nil // an offline partition is left exactly as it is
	}
	cfg := p.config()
	if cfg.DeleteSegments {
		if err := p.enforceRetention(cfg, nowMs); err != nil {
			return err
		}
	}
	if cfg.Compact {
		if err := p.compact(cfg, nowMs); err != nil {
			return err
		}
	}
	if cfg.Streams && !p.indexBuilding() {
		if err := p.cleanStreams(cfg, nowMs); err != nil {
			return err
		}
	}
	return nil
}

// segmentsToDelete is how many of the oldest segments retention removes. It
// never removes a segment holding data above the high watermark, which is not
// yet durable and may still be answered to a producer.
func segmentsToDelete(segs []storage.SegmentInfo, cfg Config, nowMs, hwm int64) int {
	var total int64
	for _, s := range segs {
		total += s.SizeBytes
	}
	n := 0
	for _, s := range segs {
		if s.NextOffset > hwm || s.NextOffset == s.BaseOffset {
			break
		}
		expired := cfg.RetentionMs >= 0 && s.MaxTimestampMs >= 0 && nowMs-s.MaxTimestampMs > cfg.RetentionMs
		oversize := cfg.RetentionBytes >= 0 && total-s.SizeBytes >= cfg.RetentionBytes
		if !expired && !oversize {
			break
		}
		total -= s.SizeBytes
		n++
	}
	return n
}

func (p *Partition) enforceRetention(cfg Config, nowMs int64) error {
	return p.asWriter(func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		limit, err := p.trimEnd()
		if err != nil {
			return err
		}
		segs := p.log.Segments()
		n := segmentsToDelete(segs, cfg, nowMs, limit)
		if n == 0 {
			return nil
		}
		if err := p.snapshotBeforeTrim(); err != nil {
			return err
		}
		if err := p.compactRaftBelow(segs[n-1].NextOffset); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := p.log.DeleteOldestSegment(nowMs); err != nil {
				return p.classifyWriteError(fmt.Errorf("retention: %w", err))
			}
		}
		p.logger.Info("retention deleted segments", "segments", n, "log_start_offset", p.log.StartOffset())
		return nil
	})
}

// compact rewrites sealed segments so that each key keeps only its newest
// record, and tombstones only until delete.retention.ms has passed since their
// timestamp. The active segment is never rewritten. As in Kafka, it stops at
// the last stable offset (an open transaction may still abort, so its
// records neither replace older ones nor go), removes the records of
// aborted transactions, and removes a marker once no batch of its
// transaction is left and delete.retention.ms passed since it was written.
// An ABORT marker goes a pass after its transaction's records, and its
// entry in the aborted index goes before it (dropAborted): a read_committed
// client drops a producer's records from an aborted transaction's first
// offset until it reads the marker, so an entry must never outlive its
// marker, and a marker without an entry is ignored.
func (p *Partition) compact(cfg Config, nowMs int64) error {
	installs := p.installsBegun()
	lso := p.LastStableOffset()
	plan := compactPlan{aborted: abortedByProducer(p.AbortedTransactions(p.log.StartOffset(), lso))}
	var err error
	if plan.latest, err = p.latestOffsets(lso, plan.aborted, cfg.Limits); err != nil {
		return err
	}
	plan.producerLast = p.producerLastOffsets()
	limit, err := p.trimEnd()
	if err != nil {
		return err
	}
	limit = min(limit, lso)
	var segs []storage.SegmentInfo
	for _, seg := range p.log.Segments() {
		if seg.Active || seg.NextOffset > limit {
			break
		}
		segs = append(segs, seg)
	}
	var abortEnd int64 = -1
	if len(segs) > 0 {
		abortEnd = segs[len(segs)-1].NextOffset
	}
	var aborts map[int64]bool
	if plan.markersGone, aborts, err = p.markersGone(lso, abortEnd, plan, nowMs, cfg.DeleteRetentionMs, cfg.Limits); err != nil {
		return err
	}
	if err := p.dropAborted(aborts, installs); err != nil {
		return err
	}
	for _, seg := range segs {
		data, err := p.log.ReadSegment(seg.BaseOffset)
		if err != nil {
			return fmt.Errorf("compact %s-%d: %w", p.topic, p.index, err)
		}
		kept, changed, err := compactBatches(data, plan, nowMs, cfg.DeleteRetentionMs, cfg.Limits)
		if err != nil {
			return fmt.Errorf("compact %s-%d segment %d: %w", p.topic, p.index, seg.BaseOffset, err)
		}
		if !changed {
			continue
		}
		if replaced, err := p.replaceSegment(seg, kept, installs); err != nil {
			return p.classifyWriteError(fmt.Errorf("compact segment %d: %w", seg.BaseOffset, err))
		} else if !replaced {
			return nil // the next pass plans over the installed log
		}
		compactedSegments.Inc()
	}
	return nil
}

// dropAborted removes from the aborted index the transactions whose ABORT
// marker (by offset) compaction is about to remove, publishes the index to
// readers and makes it durable before the marker goes: producer state
// read back after a crash must not name a transaction whose marker is
// gone. Their records are gone already, so a reader meanwhile finds a
// marker without an entry, which it ignores. Like replaceSegment, it
// drops nothing once a snapshot install began since the pass read the
// segments (installs): the installed ones may hold those markers still.
func (p *Partition) dropAborted(markers map[int64]bool, installs uint64) error {
	if len(markers) == 0 {
		return nil
	}
	return p.asWriter(func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.installs != installs || !p.producers.dropAborted(markers) {
			return nil
		}
		p.publishTxns(nil)
		return p.snapshotBeforeTrim()
	})
}

// replaceSegment replaces a sealed segment below the high watermark by
// the batches a cleaner kept of it, compacting a replica's Raft log past
// it first: the entries it held no longer exist as appended. It replaces
// nothing (false) when a snapshot install began since the pass read its
// plan and segments (installs is installsBegun then): the install put the
// leader's segments in their place, perhaps at the same base offset, and
// the pass's output would overwrite committed records it never saw.
func (p *Partition) replaceSegment(seg storage.SegmentInfo, kept []byte, installs uint64) (bool, error) {
	replaced := false
	err := p.asWriter(func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.installs != installs {
			return nil
		}
		before, err := p.snapshotIndex()
		if err != nil {
			return err
		}
		if err := p.compactRaftBelow(seg.NextOffset); err != nil {
			return err
		}
		if ok, err := p.renewSnapshotOver(seg.BaseOffset, before); err != nil || !ok {
			return err
		}
		replaced = true
		return p.log.ReplaceSegment(seg.BaseOffset, kept)
	})
	return replaced, err
}

// installsBegun is how many snapshot installs began so far.
func (p *Partition) installsBegun() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.installs
}

// producerLastOffsets maps every known producer to the last offset of its
// last batch: the batches a cleaner must never remove whole. A producer
// that appends later only makes the batch kept here one more empty batch,
// which the next pass removes.
func (p *Partition) producerLastOffsets() map[int64]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.producers.lastOffsets()
}

// latestOffsets maps every key to the offset of its newest durable record
// below hwm, leaving out markers and the records of aborted transactions.
func (p *Partition) latestOffsets(hwm int64, aborted map[int64][]AbortedTxn, lim batch.Limits) (map[string]int64, error) {
	const chunkBytes = 4 << 20
	latest := map[string]int64{}
	for from := p.log.StartOffset(); from < hwm; {
		data, err := p.log.Read(from, chunkBytes, hwm)
		if err != nil {
			return nil, fmt.Errorf("compact %s-%d: read at %d: %w", p.topic, p.index, from, err)
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return nil, fmt.Errorf("compact %s-%d at %d: %w", p.topic, p.index, from, err)
			}
			if h.Control() || inAborted(h, aborted) {
				from, data = h.NextOffset(), rest
				continue
			}
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return nil, fmt.Errorf("compact %s-%d batch %d: %w", p.topic, p.index, h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
			from = h.NextOffset()
			data = rest
		}
	}
	return latest, nil
}

// compactPlan is what a compaction pass decided from the whole log before
// rewriting segments: each key's newest offset, the aborted transactions
// by producer, each producer's last batch, and the COMMIT markers to
// remove (by offset).
type compactPlan struct {
	latest       map[string]int64
	aborted      map[int64][]AbortedTxn
	producerLast map[int64]int64
	markersGone  map[int64]bool
}

// keptRecords is what compaction keeps of a data batch's records.
func (plan compactPlan) keptRecords(h batch.Header, recs []batch.Record, nowMs, deleteRetentionMs int64) []batch.Record {
	kept := recs[:0:0]
	if inAborted(h, plan.aborted) {
		return kept // an aborted transaction's records are no one's data
	}
	for _, r := range recs {
		if r.Key == nil || plan.latest[string(r.Key)] != r.Offset {
			continue
		}
		if r.Value == nil && recordTime(h, r)+deleteRetentionMs < nowMs {
			continue // a tombstone past its grace period: consumers had their chance to see it
		}
		kept = append(kept, r)
	}
	return kept
}

// producersLast reports whether h is its producer's last batch, which
// compaction keeps (empty if need be).
func (plan compactPlan) producersLast(h batch.Header) bool {
	lastOffset, known := plan.producerLast[h.ProducerID]
	return h.ProducerID >= 0 && known && lastOffset == h.LastOffset()
}

// markersGone finds the markers below hwm that this pass removes, and
// which of them are ABORT markers. A COMMIT marker goes when no batch of
// its transaction stays (none of its records is kept, and none of its
// batches is its producer's last) and delete.retention.ms passed since it
// was written, so consumers reading past it had their chance to see it.
// An ABORT marker goes on the same terms, and only once no batch of its
// transaction is stored at all (an earlier pass removed them) and it ends
// below abortEnd, in a segment this pass rewrites: its entry in the
// aborted index goes first, and a reader must then find none of the
// transaction's records. aborts also names the entries below abortEnd
// whose marker is not stored any more.
func (p *Partition) markersGone(hwm, abortEnd int64, plan compactPlan, nowMs, deleteRetentionMs int64, lim batch.Limits) (gone, aborts map[int64]bool, err error) {
	const chunkBytes = 4 << 20
	gone, aborts = map[int64]bool{}, map[int64]bool{}
	retained := map[int64]bool{} // producer → its current transaction keeps a batch
	stored := map[int64]bool{}   // producer → its current transaction has a batch in the log
	abortsStored := map[int64]bool{}
	for from := p.log.StartOffset(); from < hwm; {
		data, err := p.log.Read(from, chunkBytes, hwm)
		if err != nil {
			return nil, nil, fmt.Errorf("compact %s-%d: read at %d: %w", p.topic, p.index, from, err)
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return nil, nil, fmt.Errorf("compact %s-%d at %d: %w", p.topic, p.index, from, err)
			}
			from, data = h.NextOffset(), rest
			if !h.Transactional() || h.ProducerID < 0 {
				continue
			}
			var kind marker
			if h.Control() {
				if kind, err = markerOf(h, whole, lim); err != nil {
					return nil, nil, fmt.Errorf("compact %s-%d: %w", p.topic, p.index, err)
				}
				expired := !retained[h.ProducerID] && h.MaxTimestamp+deleteRetentionMs < nowMs
				switch {
				case kind.kind == markerCommit && expired:
					gone[h.BaseOffset] = true
				case kind.kind == markerAbort && expired && !stored[h.ProducerID] && h.NextOffset() <= abortEnd:
					gone[h.BaseOffset], aborts[h.BaseOffset] = true, true
				}
				if kind.kind == markerAbort {
					abortsStored[h.BaseOffset] = true
				}
				delete(retained, h.ProducerID)
				delete(stored, h.ProducerID)
				continue
			}
			stored[h.ProducerID] = true
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return nil, nil, fmt.Errorf("compact %s-%d batch %d: %w", p.topic, p.index, h.BaseOffset, err)
			}
			if len(plan.keptRecords(h, recs, nowMs, deleteRetentionMs)) > 0 || plan.producersLast(h) {
				retained[h.ProducerID] = true
			}
		}
	}
	// An entry whose marker is no longer stored (a replica that installed
	// a snapshot naming it, then copied data compacted since) goes too.
	for _, list := range plan.aborted {
		for _, a := range list {
			if a.LastOffset < abortEnd && !abortsStored[a.LastOffset] {
				aborts[a.LastOffset] = true
			}
		}
	}
	return gone, aborts, nil
}

// compactBatches is the pure heart of compaction: given a segment's batches
// and the plan, it returns the batches to keep (see rewriteBatch). Offsets
// never change, so the result has gaps.
func compactBatches(data []byte, plan compactPlan, nowMs, deleteRetentionMs int64, lim batch.Limits) ([]byte, bool, error) {
	out := make([]byte, 0, len(data))
	changed := false
	for len(data) > 0 {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			return nil, false, err
		}
		data = rest
		if h.Control() {
			if plan.markersGone[h.BaseOffset] {
				changed = true
				continue
			}
			// The others stay: a read_committed consumer needs the ABORT
			// marker to stop dropping, and producer state rebuilt from the
			// log needs the marker of every transaction with a batch left.
			out = append(out, whole...)
			continue
		}
		recs, err := batch.Records(whole, lim)
		if err != nil {
			return nil, false, fmt.Errorf("batch %d: %w", h.BaseOffset, err)
		}
		kept := plan.keptRecords(h, recs, nowMs, deleteRetentionMs)
		rewritten, batchChanged, err := rewriteBatch(h, whole, kept, len(kept) == len(recs), plan.producerLast)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rewritten...)
		changed = changed || batchChanged
	}
	return out, changed, nil
}

// rewriteBatch is what a cleaner leaves of one batch once its records were
// filtered to kept (unchanged: kept is exactly what the batch holds). As in
// Kafka, a rewritten batch keeps its base offset, base sequence and last
// offset delta, and a producer's last batch stays, empty if need be: producer
// state rebuilt from the log reads a producer's last sequence and offset
// from it, so removing or renumbering it would refuse the producer's next
// batch as out of order. Any other batch left without records goes.
func rewriteBatch(h batch.Header, whole []byte, kept []batch.Record, unchanged bool, producerLast map[int64]int64) ([]byte, bool, error) {
	lastOffset, known := producerLast[h.ProducerID]
	last := h.ProducerID >= 0 && known && lastOffset == h.LastOffset()
	switch {
	case len(kept) == 0 && !last:
		return nil, true, nil
	case unchanged:
		return whole, false, nil
	}
	rebuilt, err := batch.Encode(h, h.LastOffsetDelta, kept, h.Codec())
	if err != nil {
		return nil, false, fmt.Errorf("re-encode batch %d: %w", h.BaseOffset, err)
	}
	batch.SetPartitionLeaderEpoch(rebuilt, h.PartitionLeaderEpoch)
	return rebuilt, true, nil
}

// abortedByProducer groups aborted transactions by producer.
func abortedByProducer(list []AbortedTxn) map[int64][]AbortedTxn {
	out := map[int64][]AbortedTxn{}
	for _, a := range list {
		out[a.ProducerID] = append(out[a.ProducerID], a)
	}
	return out
}

// inAborted reports whether the transactional batch h belongs to one of
// its producer's aborted transactions.
func inAborted(h batch.Header, aborted map[int64][]AbortedTxn) bool {
	if !h.Transactional() || h.Control() {
		return false
	}
	for _, a := range aborted[h.ProducerID] {
		if h.BaseOffset >= a.FirstOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}
