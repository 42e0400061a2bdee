package partition

import (
	"fmt"
	"strconv"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// deadStream says which records of one stream the stream cleaner removes:
// its events (and older cleaned markers) below offset before. Dead records
// are always a prefix of the stream, because every rule (truncate_before,
// max_count, max_age from the first young event on, deletion) cuts a prefix.
type deadStream struct {
	before    int64           // first offset kept
	revisions map[int64]int64 // offset -> revision of the dead events the index still lists
	hard      bool            // hard-deleted: no marker is needed, the stream is never reused
}

// cleanStreams is the cleanup.policy=stream cleaner: it rewrites sealed
// segments without the records of deleted, truncated and expired streams,
// leaving in each segment one marker per cleaned stream that carries the
// revision of the last event removed, so that a rebuild of the index from
// the log numbers the remaining events as before. Every other record is kept
// byte for byte.
func (p *Partition) cleanStreams(cfg Config, nowMs int64) error {
	installs := p.installsBegun()
	x, err := p.StreamIndex()
	if err != nil {
		return err
	}
	dead, err := deadStreams(x, nowMs, deadEventsListMax)
	p.spareUnsynced(dead)
	if err != nil || len(dead) == 0 {
		return err
	}
	limit, err := p.trimEnd()
	if err != nil {
		return err
	}
	producerLast := p.producerLastOffsets()
	cleanedBefore := int64(-1) // records below it were cleaned this pass
	for _, seg := range p.log.Segments() {
		if seg.Active || seg.NextOffset > limit {
			break
		}
		cleanedBefore = seg.NextOffset
		data, err := p.log.ReadSegment(seg.BaseOffset)
		if err != nil {
			return fmt.Errorf("clean streams %s-%d: %w", p.topic, p.index, err)
		}
		kept, changed, err := cleanStreamBatches(data, dead, producerLast, cfg.Limits)
		if err != nil {
			return fmt.Errorf("clean streams %s-%d segment %d: %w", p.topic, p.index, seg.BaseOffset, err)
		}
		if !changed {
			continue
		}
		if replaced, err := p.replaceSegment(seg, kept, installs); err != nil {
			return p.classifyWriteError(fmt.Errorf("clean streams segment %d: %w", seg.BaseOffset, err))
		} else if !replaced {
			return nil // the index forgets nothing: the next pass plans again
		}
		compactedSegments.Inc()
	}
	// The index forgets only the events whose records are gone; dead events
	// still in the active segment keep their entries until the next pass,
	// which needs their revisions for its markers.
	for stream, d := range dead {
		below := int64(-1)
		for off, rev := range d.revisions {
			if off < cleanedBefore {
				below = max(below, rev+1)
			}
		}
		if below > 0 {
			if err := p.deleteIndexBelow(x, stream, below, indexDeleteStepMax); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexDeleteStepMax bounds the index entries one step of the stream
// cleaner's deletion removes under the writer lock.
const indexDeleteStepMax = 1 << 14

// deadEventsListMax bounds the dead events of one stream one cleaner pass
// handles; the next pass goes on from there.
const deadEventsListMax = 1 << 22

// deleteIndexBelow removes stream's index entries below rev in steps of at
// most stepMax entries, taking the writer lock for one step at a time, so
// a long truncation never stalls appends for long. The index checks ids
// under the same lock, so no append sees an id whose entry is half gone.
func (p *Partition) deleteIndexBelow(x *streams.Index, stream string, rev int64, stepMax int) error {
	for {
		p.mu.Lock()
		done, err := x.DeleteBelow(stream, rev, stepMax)
		p.mu.Unlock()
		if err != nil {
			return fmt.Errorf("clean streams %s-%d: %w", p.topic, p.index, err)
		}
		if done {
			return nil
		}
	}
}

// deadStreams finds the streams with events the cleaner should remove, at
// most listMax of each stream's first events: when they are all dead, the
// records past the last of them are left for the next pass (they may be live).
func deadStreams(x *streams.Index, nowMs int64, listMax int) (map[string]*deadStream, error) {
	type candidate struct {
		stream string
		st     streams.State
	}
	var candidates []candidate
	err := x.EachState(func(stream string, st streams.State) bool {
		if st.LastRevision >= 0 && (st.HardDeleted || st.FirstKept() > 0 || st.Metadata.MaxAgeMs >= 0) {
			candidates = append(candidates, candidate{stream, st})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	dead := map[string]*deadStream{}
	for _, c := range candidates {
		first := c.st.FirstKept()
		// The index lists the events not yet cleaned; only they matter.
		entries, err := x.Entries(c.stream, 0, false, listMax)
		if err != nil {
			return nil, err
		}
		d := &deadStream{before: c.st.LastOffset + 1, revisions: map[int64]int64{}, hard: c.st.HardDeleted}
		if len(entries) == listMax {
			d.before = entries[len(entries)-1].Offset + 1 // unless a live event comes first, below
		}
		for _, e := range entries {
			if e.Revision >= first && !c.st.Expired(e.TimestampMs, nowMs) {
				d.before = e.Offset
				break
			}
			d.revisions[e.Offset] = e.Revision
		}
		if len(d.revisions) > 0 {
			dead[c.stream] = d
		}
	}
	return dead, nil
}

// cleanStreamBatches is the pure heart of the stream cleaner: it drops the
// dead records of each stream in dead from a segment's batches and puts a
// cleaned marker in place of the last one. Offsets never change, and
// rewritten batches keep their producer fields (see rewriteBatch).
func cleanStreamBatches(data []byte, dead map[string]*deadStream, producerLast map[int64]int64, lim batch.Limits) ([]byte, bool, error) {
	type batchRecs struct {
		h     batch.Header
		whole []byte
		recs  []batch.Record
		drop  []bool
	}
	var all []*batchRecs
	// lastDead is, per stream, where in the segment its last dead record is.
	type at struct{ b, r int }
	lastDead := map[string]at{}
	for rest := data; len(rest) > 0; {
		h, whole, next, err := batch.Next(rest)
		if err != nil {
			return nil, false, err
		}
		rest = next
		recs, err := batch.Records(whole, lim)
		if err != nil {
			return nil, false, fmt.Errorf("batch %d: %w", h.BaseOffset, err)
		}
		br := &batchRecs{h: h, whole: whole, recs: recs, drop: make([]bool, len(recs))}
		for i, r := range recs {
			if r.Key == nil {
				continue
			}
			d, ok := dead[string(r.Key)]
			if !ok || r.Offset >= d.before {
				continue
			}
			kind, op, err := streams.Classify(r)
			if err != nil || (kind == streams.KindOp && op.Name != streams.OpCleaned) {
				continue // metadata and deletions stay: a rebuild needs them
			}
			br.drop[i] = true
			if !d.hard {
				lastDead[string(r.Key)] = at{len(all), i}
			}
		}
		all = append(all, br)
	}
	// The last dead record of each stream becomes (or stays) its marker.
	markers := map[at]batch.Record{}
	for stream, pos := range lastDead {
		r := all[pos.b].recs[pos.r]
		if kind, _, _ := streams.Classify(r); kind == streams.KindOp {
			all[pos.b].drop[pos.r] = false // already a marker
			continue
		}
		rev, ok := dead[stream].revisions[r.Offset]
		if !ok {
			all[pos.b].drop[pos.r] = false // its revision is unknown: keep it rather than lose the numbering
			continue
		}
		markers[pos] = batch.Record{Offset: r.Offset, TimestampMs: r.TimestampMs, Key: r.Key, Headers: []batch.RecordHeader{
			{Key: streams.HeaderStreamOp, Value: []byte(streams.OpCleaned)},
			{Key: streams.HeaderRevision, Value: []byte(strconv.FormatInt(rev, 10))},
		}}
	}
	out := make([]byte, 0, len(data))
	changed := false
	for bi, br := range all {
		kept := br.recs[:0:0]
		for i, r := range br.recs {
			if m, ok := markers[at{bi, i}]; ok {
				kept = append(kept, m)
				continue
			}
			if !br.drop[i] {
				kept = append(kept, r)
			}
		}
		dropped := false
		for i := range br.drop {
			if br.drop[i] {
				dropped = true
			}
		}
		rewritten, batchChanged, err := rewriteBatch(br.h, br.whole, kept, !dropped, producerLast)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rewritten...)
		changed = changed || batchChanged
	}
	return out, changed, nil
}
