package partition

import (
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// AppendResult says where a produce landed.
type AppendResult struct {
	// BaseOffset is the offset of the first record appended (or of the
	// original batch when this was a retry of an already appended batch).
	BaseOffset int64
	// LastOffset is the offset of the last record; acks=all waits for it.
	LastOffset int64
	// LogAppendTimeMs is the broker timestamp given to the batch, -1 with CreateTime.
	LogAppendTimeMs int64
	// LogStartOffset is the log start offset after the append.
	LogStartOffset int64
	// Duplicate is true when the batch was a retry answered from producer
	// state, or an event-store append whose events were all appended before.
	Duplicate bool
	// Term is the term the batches were proposed in (replicated mode), for
	// WaitCommitted and WaitLocalDurable; for a retry of a batch, the
	// original's (the term it was applied in, or the leader's while it is
	// pending), so the retry is acknowledged only once the original commits.
	Term int32
	// Streams lists the revisions the append gave each stream (topics with
	// cleanup.policy=stream only).
	Streams []streams.Appended
}

// Append validates the batches in records (as a producer sent them), assigns
// their offsets and writes them. It does not wait for durability: acks=all
// callers then call WaitDurable(ctx, result.LastOffset). records is modified
// in place (base offsets, leader epoch, LogAppendTime). On a replicated
// partition the batches are proposed and the result says where they will be
// once committed: acks=all callers wait with WaitCommitted, acks=1 with
// WaitLocalDurable.
func (p *Partition) Append(records []byte) (AppendResult, error) {
	return p.append(records, false, anyTerm)
}

// AppendInTerm is Append for a coordinator whose state was loaded from this
// partition while it led term (its leader epoch): the records are appended
// only in that term, ErrNotLeader otherwise. A coordinator that lost the
// leadership and won it back, its state stale by what the leader between
// wrote, cannot append a decision made on that state.
func (p *Partition) AppendInTerm(records []byte, term int32) (AppendResult, error) {
	return p.append(records, false, term)
}

// anyTerm lets an append be made in whatever term the partition leads.
const anyTerm = int32(-1)

// AppendFromCoordinator is Append for a coordinator's own transactional
// batches: the group coordinator's transactional offset commits, which
// carry the producer's id and epoch but no sequence (base sequence -1), as
// Kafka writes them.
func (p *Partition) AppendFromCoordinator(records []byte) (AppendResult, error) {
	return p.append(records, true, anyTerm)
}

// AppendFromCoordinatorInTerm is AppendFromCoordinator in leader epoch
// term only, as AppendInTerm.
func (p *Partition) AppendFromCoordinatorInTerm(records []byte, term int32) (AppendResult, error) {
	return p.append(records, true, term)
}

// append is Append; coordinator says the batches come from a coordinator
// (WriteMarker, AppendFromCoordinator): only they write control batches
// and transactional batches without a sequence. term, unless anyTerm, is
// the only leader epoch the records may be appended in.
func (p *Partition) append(records []byte, coordinator bool, term int32) (AppendResult, error) {
	cfg := p.config()
	headers, recs, err := validateBatches(records, cfg, coordinator)
	if err != nil {
		return AppendResult{}, err
	}
	if p.repl != nil {
		// An offline partition takes no writes, in either mode; the
		// replica of a failed one would refuse them as not leading.
		if err := p.Err(); err != nil {
			return AppendResult{}, err
		}
		return p.appendReplicated(records, headers, recs, cfg, term)
	}
	if p.afterValidate != nil {
		p.afterValidate()
	}
	appendTimeMs := int64(-1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return AppendResult{}, fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	if err := p.Err(); err != nil {
		return AppendResult{}, err
	}
	if epoch := p.LeaderEpoch(); term != anyTerm && epoch != term {
		return AppendResult{}, fmt.Errorf("%w: %s-%d: leader epoch %d, the append was for %d", ErrNotLeader, p.topic, p.index, epoch, term)
	}
	if p.cfg != cfg {
		// The config changed since the batches were validated (a new
		// cleanup.policy needs other checks and, for stream, the records):
		// validate again against the config this append is made under.
		cfg = p.cfg
		if headers, recs, err = validateBatches(records, cfg, coordinator); err != nil {
			return AppendResult{}, err
		}
	}
	if p.build != nil && carriesStreamHeaders(recs) {
		return AppendResult{}, fmt.Errorf("%w: %s-%d", ErrStreamIndexBuilding, p.topic, p.index)
	}
	kinds := make([]marker, len(headers))
	if coordinator {
		for i, data := 0, records; i < len(headers); i++ {
			if kinds[i], err = markerOf(headers[i], data[:headers[i].TotalBytes()], cfg.Limits); err != nil {
				return AppendResult{}, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
			}
			data = data[headers[i].TotalBytes():]
		}
	}
	for i, h := range headers {
		dup, err := p.producers.check(h, kinds[i], p.verifiedLocked(h))
		if err != nil {
			return AppendResult{}, err
		}
		if dup != nil {
			if len(headers) > 1 {
				return AppendResult{}, fmt.Errorf("%w: a retried idempotent batch must be sent alone", ErrInvalidRecord)
			}
			return AppendResult{BaseOffset: dup.BaseOffset, LastOffset: dup.LastOffset, LogAppendTimeMs: -1,
				LogStartOffset: p.log.StartOffset(), Duplicate: true}, nil
		}
	}

	if !p.epochRecorded {
		if err := p.persistEpochs(); err != nil {
			return AppendResult{}, p.classifyWriteError(err)
		}
		p.epochRecorded = true
	}
	nowMs := p.clock.Now().UnixMilli()
	if cfg.LogAppendTime {
		appendTimeMs = nowMs
	}
	base := p.log.NextOffset()
	change, dup, err := p.checkStreams(headers, recs, base)
	if err != nil || dup != nil {
		return dup.orZero(), err
	}
	holder := txnHolder(headers)
	next := base
	epoch := p.LeaderEpoch()
	data := records
	for i := range headers {
		batch.SetBaseOffset(data, next)
		batch.SetPartitionLeaderEpoch(data, epoch)
		if cfg.LogAppendTime {
			batch.SetLogAppendTime(data[:headers[i].TotalBytes()], appendTimeMs)
		}
		headers[i].BaseOffset = next
		next = headers[i].NextOffset()
		data = data[headers[i].TotalBytes():]
	}
	if err := p.log.Append(records, nowMs); err != nil {
		return AppendResult{}, p.classifyWriteError(err)
	}
	for i, h := range headers {
		p.recordTxn(h, kinds[i], nowMs)
	}
	var appended []streams.Appended
	if change != nil {
		appended = change.Appended()
		if err := p.indexAppended(change, holder, headers, kinds); err != nil {
			// The log holds records the index lacks: only a rebuild at the
			// next open can make the index trustworthy again.
			p.fail(err)
			return AppendResult{}, p.Err()
		}
	}
	appendedRecords.Add(float64(next - base))
	appendedBytes.Add(float64(len(records)))
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return AppendResult{BaseOffset: base, LastOffset: next - 1, LogAppendTimeMs: appendTimeMs,
		LogStartOffset: p.log.StartOffset(), Streams: appended}, nil
}

// validateBatches checks every batch the way Kafka does before anything is
// written, so a bad batch changes nothing. It runs outside the writer lock,
// against a copy of the config that Append compares with the current one
// once it holds the lock. The records are returned for stream topics only.
func validateBatches(records []byte, cfg Config, coordinator bool) ([]batch.Header, [][]batch.Record, error) {
	if len(records) == 0 {
		return nil, nil, fmt.Errorf("%w: no record batch in produce", ErrInvalidRecord)
	}
	var headers []batch.Header
	var all [][]batch.Record
	for rest := records; len(rest) > 0; {
		h, whole, next, err := batch.Next(rest)
		if err != nil {
			if errors.Is(err, batch.ErrShort) || errors.Is(err, batch.ErrCorrupt) {
				return nil, nil, fmt.Errorf("%w: %v", ErrCorruptMessage, err)
			}
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
		}
		if len(whole) > int(cfg.MessageBytesMax) {
			return nil, nil, fmt.Errorf("%w: batch of %d bytes, max.message.bytes is %d", ErrMessageTooLarge, len(whole), cfg.MessageBytesMax)
		}
		if err := checkTxnHeader(h, coordinator); err != nil {
			return nil, nil, err
		}
		// Records are kept for stream topics only: materialising the
		// thousand records of a 1 MiB batch for every other topic cost an
		// allocation the append never used.
		var recs []batch.Record
		err = batch.ValidateEach(h, whole, cfg.Limits, func(r *batch.Record) error {
			if err := checkRecord(r, h, cfg); err != nil {
				return err
			}
			if cfg.Streams {
				if recs == nil { // the count is checked against the bytes by now
					recs = make([]batch.Record, 0, h.NumRecords)
				}
				recs = append(recs, *r)
			}
			return nil
		})
		if err != nil {
			switch {
			case errors.Is(err, ErrInvalidRecord): // checkRecord's, already classified
				return nil, nil, err
			case errors.Is(err, batch.ErrCorrupt):
				return nil, nil, fmt.Errorf("%w: %v", ErrCorruptMessage, err)
			}
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
		}
		headers = append(headers, h)
		if cfg.Streams {
			all = append(all, recs)
		}
		rest = next
	}
	return headers, all, nil
}

// checkRecord checks what the topic's config asks of each record beyond
// the batch format.
func checkRecord(r *batch.Record, h batch.Header, cfg Config) error {
	if cfg.Compact && r.Key == nil {
		return fmt.Errorf("%w: a compacted topic needs a key on every record (offset delta %d has none)",
			ErrInvalidRecord, r.Offset-h.BaseOffset)
	}
	if !cfg.Streams && len(r.Headers) > 0 {
		if _, ok := streams.Header(*r, streams.HeaderExpectedRevision); ok {
			return fmt.Errorf("%w: header %s needs a topic with cleanup.policy=stream",
				ErrInvalidRecord, streams.HeaderExpectedRevision)
		}
	}
	return nil
}

// checkTxnHeader checks what a batch says of transactions: only a
// coordinator writes control batches (markers) and transactional batches
// without a sequence, and a transactional batch names its producer. Stream
// topics hold a transaction's stream changes until its marker (Pending),
// in either mode.
func checkTxnHeader(h batch.Header, coordinator bool) error {
	switch {
	case h.Control() && !coordinator:
		return fmt.Errorf("%w: control batches are written by the transaction coordinator only", ErrInvalidRecord)
	case h.Transactional() && h.BaseSequence < 0 && !coordinator:
		return fmt.Errorf("%w: a transactional batch without a sequence", ErrInvalidRecord)
	case h.Control() && (!h.Transactional() || h.ProducerID < 0 || h.NumRecords != 1):
		return fmt.Errorf("%w: a marker is one transactional control record of a producer", ErrInvalidRecord)
	case h.Transactional() && (h.ProducerID < 0 || h.ProducerEpoch < 0):
		return fmt.Errorf("%w: a transactional batch without producer id %d or epoch %d", ErrInvalidRecord, h.ProducerID, h.ProducerEpoch)
	}
	return nil
}
