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
	if cfg.Streams {
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
	p.mu.Lock()
	defer p.mu.Unlock()
	n := segmentsToDelete(p.log.Segments(), cfg, nowMs, p.HighWatermark())
	if n > 0 {
		if err := p.snapshotBeforeTrim(); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if err := p.log.DeleteOldestSegment(nowMs); err != nil {
			return p.classifyWriteError(fmt.Errorf("retention: %w", err))
		}
	}
	if n > 0 {
		p.logger.Info("retention deleted segments", "segments", n, "log_start_offset", p.log.StartOffset())
	}
	return nil
}

// compact rewrites sealed segments so that each key keeps only its newest
// record, and tombstones only until delete.retention.ms has passed since their
// timestamp. The active segment is never rewritten.
func (p *Partition) compact(cfg Config, nowMs int64) error {
	hwm := p.HighWatermark()
	latest, err := p.latestOffsets(hwm, cfg.Limits)
	if err != nil {
		return err
	}
	for _, seg := range p.log.Segments() {
		if seg.Active || seg.NextOffset > hwm {
			break
		}
		data, err := p.log.ReadSegment(seg.BaseOffset)
		if err != nil {
			return fmt.Errorf("compact %s-%d: %w", p.topic, p.index, err)
		}
		kept, changed, err := compactBatches(data, latest, nowMs, cfg.DeleteRetentionMs, cfg.Limits)
		if err != nil {
			return fmt.Errorf("compact %s-%d segment %d: %w", p.topic, p.index, seg.BaseOffset, err)
		}
		if !changed {
			continue
		}
		p.mu.Lock()
		err = p.log.ReplaceSegment(seg.BaseOffset, kept)
		p.mu.Unlock()
		if err != nil {
			return p.classifyWriteError(fmt.Errorf("compact segment %d: %w", seg.BaseOffset, err))
		}
		compactedSegments.Inc()
	}
	return nil
}

// latestOffsets maps every key to the offset of its newest durable record.
func (p *Partition) latestOffsets(hwm int64, lim batch.Limits) (map[string]int64, error) {
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

// compactBatches is the pure heart of compaction: given a segment's batches
// and each key's newest offset, it returns the batches to keep. A batch whose
// records all survive is kept byte for byte; one that loses some is
// re-encoded with the same codec and producer fields; one that loses all is
// dropped. Offsets never change, so the result has gaps.
func compactBatches(data []byte, latest map[string]int64, nowMs, deleteRetentionMs int64, lim batch.Limits) ([]byte, bool, error) {
	out := make([]byte, 0, len(data))
	changed := false
	for len(data) > 0 {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			return nil, false, err
		}
		data = rest
		recs, err := batch.Records(whole, lim)
		if err != nil {
			return nil, false, fmt.Errorf("batch %d: %w", h.BaseOffset, err)
		}
		kept := recs[:0:0]
		for _, r := range recs {
			if r.Key == nil || latest[string(r.Key)] != r.Offset {
				continue
			}
			if r.Value == nil && recordTime(h, r)+deleteRetentionMs < nowMs {
				continue // a tombstone past its grace period: consumers had their chance to see it
			}
			kept = append(kept, r)
		}
		switch {
		case len(kept) == len(recs):
			out = append(out, whole...)
		case len(kept) == 0:
			changed = true
		default:
			changed = true
			rebuilt, err := batch.Encode(h, int32(h.LastOffset()-kept[0].Offset), kept, h.Codec())
			if err != nil {
				return nil, false, fmt.Errorf("re-encode batch %d: %w", h.BaseOffset, err)
			}
			batch.SetPartitionLeaderEpoch(rebuilt, h.PartitionLeaderEpoch)
			out = append(out, rebuilt...)
		}
	}
	return out, changed, nil
}
