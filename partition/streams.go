package partition

import (
	"errors"
	"fmt"
	"path"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs/pebblefs"
	"github.com/cairnlog/cairn/streams"
)

// streamIndexDir is the stream index's directory inside the partition's.
const streamIndexDir = "stream-index"

// ErrNoStreamIndex: the topic is not an event store (cleanup.policy is not stream).
var ErrNoStreamIndex = errors.New("topic has no stream index (cleanup.policy is not stream)")

// duplicate is an append answered from the stream index as a retry.
type duplicate struct{ result AppendResult }

func (d *duplicate) orZero() AppendResult {
	if d == nil {
		return AppendResult{}
	}
	return d.result
}

// checkStreams runs the stream index's checks over records about to be
// appended at base. Callers hold mu. It returns the change to commit after
// the write, or the original result of a retried append.
func (p *Partition) checkStreams(headers []batch.Header, recs [][]batch.Record, base int64) (*streams.Change, *duplicate, error) {
	if p.streamIdx == nil {
		return nil, nil, nil
	}
	change := p.streamIdx.NewChange()
	next := base
	for i, h := range headers {
		shift := next - h.BaseOffset
		for _, r := range recs[i] {
			if err := change.Check(r, r.Offset+shift); err != nil {
				return nil, nil, p.streamError(err)
			}
		}
		next += int64(h.LastOffsetDelta) + 1
	}
	if err := change.Result(); err != nil {
		var dup *streams.DuplicateError
		if !errors.As(err, &dup) {
			return nil, nil, p.streamError(err)
		}
		return nil, &duplicate{AppendResult{BaseOffset: dup.FirstOffset, LastOffset: dup.LastOffset, LogAppendTimeMs: -1,
			LogStartOffset: p.log.StartOffset(), Duplicate: true,
			Streams: []streams.Appended{{Stream: dup.Stream, First: dup.First, Last: dup.Last, FirstOffset: dup.FirstOffset, LastOffset: dup.LastOffset}}}}, nil
	}
	return change, nil, nil
}

// streamError maps a stream check's failure: the producer's mistakes are
// invalid records (with the reason), anything else is the index failing.
func (p *Partition) streamError(err error) error {
	if errors.Is(err, streams.ErrWrongExpectedRevision) || errors.Is(err, streams.ErrStreamDeleted) || errors.Is(err, streams.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	p.fail(fmt.Errorf("stream index: %w", err))
	return p.Err()
}

// openIndex opens the stream index and catches it up with the log. Callers
// hold mu (or own p exclusively, in Open).
func (p *Partition) openIndex() error {
	logEnd := p.log.NextOffset()
	// A failed flush or compaction (disk full, files removed) leaves the
	// index unreliable and pebble retrying without pause: take the
	// partition offline and stop the index; a restart rebuilds it.
	opened := make(chan *streams.Index, 1)
	x, err := streams.Open(path.Join(p.dir, streamIndexDir), logEnd, streams.Options{
		FS:     pebblefs.New(p.fsys),
		Logger: p.logger,
		OnFailure: func(err error) {
			p.fail(fmt.Errorf("stream index: %w", err))
			if x := <-opened; x != nil {
				x.Abandon()
			}
		},
	})
	opened <- x
	if err != nil {
		return err
	}
	from := max(x.Next(), p.log.StartOffset())
	if from > x.Next() {
		// Records below the log start are gone; the index keeps what it knew of them.
		if err := x.SetNext(from); err != nil {
			_ = x.Close()
			return err
		}
	}
	if err := p.replayIndex(x, from, logEnd); err != nil {
		_ = x.Close()
		return err
	}
	p.streamIdx = x
	return nil
}

// replayIndex feeds the index the records in [from, logEnd).
func (p *Partition) replayIndex(x *streams.Index, from, logEnd int64) error {
	const chunkBytes = 4 << 20
	if from < logEnd {
		p.logger.Info("stream index catching up with the log", "from", from, "to", logEnd)
	}
	for from < logEnd {
		data, err := p.log.Read(from, chunkBytes, logEnd)
		if err != nil {
			return fmt.Errorf("stream index replay from offset %d: %w", from, err)
		}
		if len(data) == 0 {
			return fmt.Errorf("stream index replay: no batch at offset %d below log end %d", from, logEnd)
		}
		change := x.NewChange()
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("stream index replay at offset %d: %w", from, err)
			}
			recs, err := batch.Records(whole, p.cfg.Limits)
			if err != nil {
				return fmt.Errorf("stream index replay of batch %d: %w", h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset < from {
					continue // the batch began before the start point
				}
				if err := change.Apply(r, r.Offset); err != nil {
					return fmt.Errorf("stream index replay at offset %d: %w", r.Offset, err)
				}
			}
			from = h.NextOffset()
			data = rest
		}
		if err := x.Commit(change); err != nil {
			return err
		}
		if err := x.SetNext(from); err != nil {
			return err
		}
	}
	return nil
}

// setStreams turns the stream index on or off after a config change. Callers hold mu.
func (p *Partition) setStreams(on bool) error {
	switch {
	case on && p.streamIdx == nil:
		return p.openIndex()
	case !on && p.streamIdx != nil:
		err := p.streamIdx.Delete()
		p.streamIdx = nil
		return err
	}
	return nil
}

// StreamIndex is the partition's stream index, for readers.
func (p *Partition) StreamIndex() (*streams.Index, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streamIdx == nil {
		return nil, fmt.Errorf("%s-%d: %w", p.topic, p.index, ErrNoStreamIndex)
	}
	return p.streamIdx, nil
}

// RecordsAt returns the durable records at offsets (in the order given);
// an offset whose record is gone (below the log start, removed by the
// cleaner) has no record in the result, which is keyed by offset.
func (p *Partition) RecordsAt(offsets []int64) (map[int64]batch.Record, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	hwm := p.HighWatermark()
	out := make(map[int64]batch.Record, len(offsets))
	var cached []batch.Record
	var lo, hi int64 = 0, -1 // offsets covered by cached
	lim := p.config().Limits
	for _, off := range offsets {
		if off >= hwm || off < p.log.StartOffset() {
			continue
		}
		if off < lo || off > hi {
			data, err := p.log.Read(off, 1, hwm)
			if err != nil {
				return nil, fmt.Errorf("%w: %s-%d at %d: %v", ErrRead, p.topic, p.index, off, err)
			}
			h, whole, _, err := batch.Next(data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s-%d at %d: %v", ErrRead, p.topic, p.index, off, err)
			}
			if cached, err = batch.Records(whole, lim); err != nil {
				return nil, fmt.Errorf("%w: %s-%d batch %d: %v", ErrRead, p.topic, p.index, h.BaseOffset, err)
			}
			lo, hi = h.BaseOffset, h.LastOffset()
		}
		for _, r := range cached {
			if r.Offset == off {
				out[off] = r
				break
			}
		}
	}
	return out, nil
}
