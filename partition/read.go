package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage"
)

// ReadResult is one partition's part of a fetch.
type ReadResult struct {
	// Records holds whole batches as stored, starting with the batch containing
	// the requested offset (so it may begin before it, as in Kafka).
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
	// LastStableOffset is the partition's (see LastStableOffset), read
	// with the high watermark.
	LastStableOffset int64
	// Aborted lists, for a read_committed read, the aborted transactions
	// overlapping the records returned (see AbortedTransactions).
	Aborted []AbortedTxn
}

// Read returns batches from offset up to the high watermark, at most maxBytes
// except that a first batch larger than maxBytes is returned whole, so a
// consumer can always make progress.
func (p *Partition) Read(offset int64, maxBytes int) (ReadResult, error) {
	res, _, err := p.ReadAppend(nil, offset, maxBytes)
	return res, err
}

// ReadAppend is Read reading into dst's spare capacity, for callers that
// reuse buffers: it returns dst extended by the records read, which are
// also res.Records (nil when none).
func (p *Partition) ReadAppend(dst []byte, offset int64, maxBytes int) (res ReadResult, buf []byte, err error) {
	return p.ReadAppendIsolated(dst, offset, maxBytes, false)
}

// ReadAppendIsolated is ReadAppend at an isolation level: committed
// (read_committed) reads stop at the last stable offset instead of the high
// watermark and list the aborted transactions the records overlap, so that
// the client drops their records.
func (p *Partition) ReadAppendIsolated(dst []byte, offset int64, maxBytes int, committed bool) (res ReadResult, buf []byte, err error) {
	res, upper, err := p.readBounds(offset, committed)
	if err != nil || offset >= upper {
		return res, dst, err
	}
	buf, err = p.log.ReadAppend(dst, offset, maxBytes, upper)
	if err != nil {
		return res, dst, p.readError(err, offset)
	}
	if len(buf) > len(dst) {
		res.Records = buf[len(dst):len(buf):len(buf)]
	}
	if p.repl != nil {
		cfg := p.config()
		var epochs []raftlog.LegacyEpoch
		if len(res.Records) > 0 {
			epochs = p.raft.TermEpochs(offset, upper)
		}
		if err := checkBatches(res.Records, offset, upper, p.log.NextOffset(), !cfg.Compact && !cfg.Streams, epochs); err != nil {
			return ReadResult{}, dst, p.readError(err, offset)
		}
	}
	if committed && len(res.Records) > 0 {
		res.Aborted = p.AbortedTransactions(offset, recordsEnd(res.Records))
	}
	return res, buf, nil
}

// readBounds checks a read at offset and returns the positions it answers
// with and the offset it reads up to: the high watermark, or for a
// committed read the last stable offset.
func (p *Partition) readBounds(offset int64, committed bool) (res ReadResult, upper int64, err error) {
	if err := p.Err(); err != nil {
		return ReadResult{}, 0, err
	}
	hwm := p.HighWatermark()
	start := p.log.StartOffset()
	res = ReadResult{HighWatermark: hwm, LogStartOffset: start, LastStableOffset: p.txns.Load().stableOffset(hwm, start)}
	if offset < res.LogStartOffset || offset > p.log.NextOffset() {
		return res, 0, fmt.Errorf("%w: offset %d, log has [%d, %d)", ErrOffsetOutOfRange, offset, res.LogStartOffset, p.log.NextOffset())
	}
	upper = hwm
	if committed {
		upper = res.LastStableOffset
	}
	return res, upper, nil
}

// readError is what a failed log read at offset means for the partition.
func (p *Partition) readError(err error, offset int64) error {
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		return fmt.Errorf("%w: offset %d: %v", ErrOffsetOutOfRange, offset, err)
	}
	return p.classifyReadError(err, offset)
}

// recordsEnd is the offset after the last whole batch in records.
func recordsEnd(records []byte) int64 {
	end := int64(-1)
	for len(records) > 0 {
		h, _, rest, err := batch.Next(records)
		if err != nil {
			break
		}
		end, records = h.NextOffset(), rest
	}
	return end
}

// OffsetForTimestamp returns the first record at or after tsMs (offset and
// timestamp), or -1, -1 when every durable record is older.
func (p *Partition) OffsetForTimestamp(tsMs int64) (int64, int64, error) {
	if err := p.Err(); err != nil {
		return -1, -1, err
	}
	hwm := p.HighWatermark()
	start := p.log.StartOffset()
	// A batch can reach tsMs by its header alone (an emptied producer batch
	// keeps its max timestamp, records below the log start do not count):
	// then a later batch may hold the record.
	for from := int64(0); from < hwm; {
		whole, err := p.log.FindTimestampFrom(tsMs, from)
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if err != nil {
			return -1, -1, fmt.Errorf("find timestamp %d in %s-%d: %w", tsMs, p.topic, p.index, err)
		}
		recs, h, err := p.decode(whole)
		if err != nil {
			return -1, -1, err
		}
		for _, r := range recs {
			ts := recordTime(h, r)
			if r.Offset >= start && r.Offset < hwm && ts >= tsMs {
				return r.Offset, ts, nil
			}
		}
		from = h.NextOffset()
	}
	return -1, -1, nil
}

// MaxTimestamp returns the offset and timestamp of the record with the largest
// timestamp (ListOffsets with timestamp -3), or -1, -1 for an empty log.
func (p *Partition) MaxTimestamp() (int64, int64, error) {
	if err := p.Err(); err != nil {
		return -1, -1, err
	}
	tsMax, base, err := p.log.MaxTimestamp()
	if errors.Is(err, storage.ErrNotFound) {
		return -1, -1, nil
	}
	if err != nil {
		return -1, -1, fmt.Errorf("max timestamp of %s-%d: %w", p.topic, p.index, err)
	}
	hwm := p.HighWatermark()
	if base >= hwm {
		return -1, -1, nil
	}
	whole, err := p.log.Read(base, 1, hwm)
	if err != nil {
		return -1, -1, fmt.Errorf("read batch %d of %s-%d: %w", base, p.topic, p.index, err)
	}
	recs, h, err := p.decode(whole)
	if err != nil {
		return -1, -1, err
	}
	for _, r := range recs {
		if recordTime(h, r) == tsMax {
			return r.Offset, tsMax, nil
		}
	}
	return h.LastOffset(), tsMax, nil
}

// decode returns the records of the first batch in whole.
func (p *Partition) decode(whole []byte) ([]batch.Record, batch.Header, error) {
	h, first, _, err := batch.Next(whole)
	if err != nil {
		return nil, h, fmt.Errorf("decode stored batch of %s-%d: %w", p.topic, p.index, err)
	}
	recs, err := batch.Records(first, p.config().Limits)
	if err != nil {
		return nil, h, fmt.Errorf("decode stored batch %d of %s-%d: %w", h.BaseOffset, p.topic, p.index, err)
	}
	return recs, h, nil
}

// recordTime is a record's timestamp as consumers see it: with LogAppendTime
// every record carries the batch's broker timestamp.
func recordTime(h batch.Header, r batch.Record) int64 {
	if h.LogAppendTime() {
		return h.MaxTimestamp
	}
	return r.TimestampMs
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch not above
// epoch and the offset where it ended. (-1, -1) if the epoch is unknown. It
// never waits for the writer: the current epoch ends at the log end read just
// before, which an append may pass meanwhile, as it may right after.
//
// A replicated partition answers from its Raft log's terms
// (raftlog.Log.EpochEndOffset) below the high watermark: entries above it
// may still be cut, so no answer points past what consumers can see.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	if p.raft != nil {
		return p.raft.EpochEndOffset(epoch, p.HighWatermark())
	}
	logEnd := p.log.NextOffset()
	p.epochMu.Lock()
	defer p.epochMu.Unlock()
	return p.epochs.endOffsetFor(epoch, logEnd)
}

// DeleteRecordsBefore advances the log start offset to offset (DeleteRecords);
// -1 means the high watermark. It returns the new log start offset. On a
// replicated partition it is a proposal, applied by every replica, and
// ctx bounds the wait for this replica to apply it (a leader cut off from
// its followers waits until it steps down).
func (p *Partition) DeleteRecordsBefore(ctx context.Context, offset int64) (int64, error) {
	if p.repl != nil {
		return p.deleteRecordsReplicated(ctx, offset)
	}
	offset, err := p.checkDeleteRecords(offset)
	if err != nil {
		return -1, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if offset <= p.log.StartOffset() {
		return p.log.StartOffset(), nil
	}
	if err := p.snapshotBeforeTrim(); err != nil {
		return -1, err
	}
	if err := p.log.AdvanceStartOffset(offset); err != nil {
		return -1, p.classifyWriteError(err)
	}
	p.logger.Info("log start offset advanced", "offset", offset)
	return p.log.StartOffset(), nil
}

// checkDeleteRecords checks a DeleteRecords request and returns the offset
// it asks for (-1 becomes the high watermark).
func (p *Partition) checkDeleteRecords(offset int64) (int64, error) {
	if err := p.Err(); err != nil {
		return -1, err
	}
	if p.config().Streams {
		// Revisions count a stream's events from its first: removing a
		// prefix of the log would renumber streams at the next index rebuild.
		return -1, fmt.Errorf("%w: %s-%d: DeleteRecords on a topic with cleanup.policy=stream; delete or truncate streams instead",
			ErrPolicyViolation, p.topic, p.index)
	}
	hwm := p.HighWatermark()
	if offset == -1 {
		offset = hwm
	}
	if offset < 0 || offset > hwm {
		return -1, fmt.Errorf("%w: delete records before %d, high watermark is %d", ErrOffsetOutOfRange, offset, hwm)
	}
	return offset, nil
}

// ReadSectionsIsolated is ReadAppendIsolated giving the records as
// sections of segment files appended to dst (see storage.Log.ReadSections)
// rather than bytes; res.Records stays nil. The caller releases the
// sections added.
func (p *Partition) ReadSectionsIsolated(dst []storage.Section, offset int64, maxBytes int, committed bool) (res ReadResult, sections []storage.Section, err error) {
	res, upper, err := p.readBounds(offset, committed)
	if err != nil || offset >= upper {
		return res, dst, err
	}
	sections, err = p.log.ReadSections(dst, offset, maxBytes, upper)
	if err != nil {
		return res, dst, p.readError(err, offset)
	}
	if committed && len(sections) > len(dst) {
		res.Aborted = p.AbortedTransactions(offset, sections[len(sections)-1].NextOffset)
	}
	return res, sections, nil
}

// checkBatches verifies every batch of a read at offset below upper, CRC
// included, where storage.Log.Read has already refused batches out of
// place (offsets, which the CRC does not cover); and, where no cleaner
// removes whole batches (dense), that a read below upper found one when
// the segments go on past offset (a replica's high watermark may be ahead
// of them for a moment, as a snapshot installs). Nor does the CRC cover a
// batch's leader epoch: each batch at or above the first of epochs
// (raftlog.Log.TermEpochs) must carry the epoch it falls in. A replica
// whose stored batch is damaged (below the recovery point, which its open
// does not read) then goes offline and is renewed from its group rather
// than serve the damage or stop short.
// The storage returns whole batches only. Reads a Kafka fetch sends with
// sendfile never pass here; a client's own CRC check refuses those, as
// with Kafka.
func checkBatches(records []byte, offset, upper, segmentsEnd int64, dense bool, epochs []raftlog.LegacyEpoch) error {
	if len(records) == 0 && offset < upper && offset < segmentsEnd && dense {
		return fmt.Errorf("no batch at offset %d, below %d and the segments' end %d: %w", offset, upper, segmentsEnd, batch.ErrCorrupt)
	}
	for rest := records; len(rest) > 0; {
		h, _, next, err := batch.Next(rest)
		if err != nil {
			return err
		}
		for len(epochs) > 1 && epochs[1].StartOffset <= h.BaseOffset {
			epochs = epochs[1:]
		}
		if len(epochs) > 0 && epochs[0].StartOffset <= h.BaseOffset && h.PartitionLeaderEpoch != epochs[0].Epoch {
			return fmt.Errorf("batch at offset %d has leader epoch %d, the epoch from offset %d is %d: %w",
				h.BaseOffset, h.PartitionLeaderEpoch, epochs[0].StartOffset, epochs[0].Epoch, batch.ErrCorrupt)
		}
		rest = next
	}
	return nil
}
