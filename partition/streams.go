package partition

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs/pebblefs"
	"github.com/cairnlog/cairn/streams"
)

// streamIndexDir is the stream index's directory inside the partition's.
const streamIndexDir = "stream-index"

// ErrNoStreamIndex: the topic is not an event store (cleanup.policy is not stream).
var ErrNoStreamIndex = errors.New("topic has no stream index (cleanup.policy is not stream)")

// ErrStreamIndexBuilding: the topic just became an event store and its index
// is still being built from the log; the request may be retried.
var ErrStreamIndexBuilding = errors.New("the stream index is being built from the log; retry shortly")

// duplicate is an append answered from the stream index as a retry.
type duplicate struct{ result AppendResult }

func (d *duplicate) orZero() AppendResult {
	if d == nil {
		return AppendResult{}
	}
	return d.result
}

// checkStreams runs the stream index's checks over records about to be
// appended at base. Callers hold mu. It returns the change to commit (or,
// for a transaction's batch, to hold) after the write, or the original
// result of a retried append. Markers carry no stream records: what they
// end is handled after the write (indexAppended).
func (p *Partition) checkStreams(headers []batch.Header, recs [][]batch.Record, base int64) (*streams.Change, *duplicate, error) {
	if p.streamIdx == nil {
		return nil, nil, nil
	}
	holder := txnHolder(headers)
	for _, h := range headers {
		if !h.Control() && (h.Transactional() != (holder >= 0) || (holder >= 0 && h.ProducerID != holder)) {
			return nil, nil, fmt.Errorf("%w: batches of different transactions in one append to a stream topic", ErrInvalidRecord)
		}
	}
	change := p.streamTxns.Begin(p.streamIdx, holder)
	next := base
	for i, h := range headers {
		shift := next - h.BaseOffset
		next += int64(h.LastOffsetDelta) + 1
		if h.Control() {
			continue
		}
		for _, r := range recs[i] {
			if err := change.Check(r, r.Offset+shift); err != nil {
				return nil, nil, p.streamError(err)
			}
		}
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
	if err := p.streamTxns.Admit(change, holder); err != nil {
		return nil, nil, fmt.Errorf("%s-%d: %w", p.topic, p.index, err)
	}
	return change, nil, nil
}

// txnHolder is the producer whose transaction the data batches of an
// append belong to, -1 when they belong to none.
func txnHolder(headers []batch.Header) int64 {
	for _, h := range headers {
		if !h.Control() {
			if h.Transactional() {
				return h.ProducerID
			}
			return -1
		}
	}
	return -1
}

// indexAppended gives the stream index what an append just wrote: change,
// the stream checks of its records, is committed, or held until the
// marker of holder's transaction; then each marker among headers (kinds)
// commits or drops what its transaction held. Callers hold mu.
func (p *Partition) indexAppended(change *streams.Change, holder int64, headers []batch.Header, kinds []marker) error {
	x := p.streamIdx
	defer func() { p.streamsHeld.Store(int64(p.streamTxns.Streams())) }()
	if holder >= 0 {
		p.streamTxns.Hold(holder, change)
		// Before any later commit moves the covered offset past them.
		if err := x.SetHeld(p.streamTxns.First()); err != nil {
			return err
		}
	} else {
		p.noteStreamMoves(change.Moved()) // before readers can see them in the index
		if err := x.Commit(change); err != nil {
			return err
		}
	}
	for i, h := range headers {
		if kinds[i].kind == markerNone {
			continue
		}
		if err := p.endStreamTxn(x, p.streamTxns, h, kinds[i].kind == markerCommit, p.noteStreamMoves); err != nil {
			return err
		}
	}
	return nil
}

// endStreamTxn ends, at its marker h, what a transaction held in pending:
// a COMMIT commits it to x, an ABORT drops it. Either way the index then
// covers the marker, and the oldest open transaction is noted (SetHeld).
func (p *Partition) endStreamTxn(x *streams.Index, pending *streams.Pending, h batch.Header, commit bool, noteMoves func(map[string]int64)) error {
	c := pending.End(h.ProducerID)
	if commit && c != nil && !c.Empty() {
		if noteMoves != nil {
			noteMoves(c.Moved())
		}
		if err := x.Commit(c); err != nil {
			return err
		}
	}
	if err := x.SetNext(h.NextOffset()); err != nil {
		return err
	}
	return x.SetHeld(pending.First())
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
	x, err := p.openIndexStore()
	if err != nil {
		return err
	}
	pending := streams.NewPending()
	if err := p.replayIndex(x, pending, p.replayStart(x), p.dataEnd(), p.cfg.Limits, nil, false); err != nil {
		_ = x.Close()
		return err
	}
	p.streamIdx, p.streamTxns = x, pending
	p.streamsHeld.Store(int64(pending.Streams()))
	return nil
}

// replayStart is where a replay into x starts: where it stopped, or before
// that where the oldest transaction it holds began, but never below the
// log start.
func (p *Partition) replayStart(x *streams.Index) int64 {
	return max(x.ReplayStart(), p.log.StartOffset())
}

// openIndexStore opens the index's files, moving the point it covers up to
// the log start: records below it are gone, and the index keeps what it knew
// of them. It needs no lock: nothing else uses the index before it is published.
func (p *Partition) openIndexStore() (*streams.Index, error) {
	// The segments' end, even on a replica: its index, committed at apply,
	// may be past raft-state's applied index, never past the log.
	logEnd := p.log.NextOffset()
	// A failed flush or compaction (disk full, files removed) leaves the
	// index unreliable and pebble retrying without pause: take the
	// partition offline and stop the index; a restart rebuilds it.
	opened := make(chan *streams.Index, 1)
	x, err := streams.Open(path.Join(p.dir, streamIndexDir), logEnd, streams.Options{
		FS:     pebblefs.New(p.fsys),
		Logger: p.logger,
		Clock:  p.clock,
		OnFailure: func(err error) {
			p.fail(fmt.Errorf("stream index: %w", err))
			if x := <-opened; x != nil {
				x.Abandon()
			}
		},
	})
	opened <- x
	if err != nil {
		return nil, err
	}
	if from := p.log.StartOffset(); from > x.Next() {
		if err := x.SetNext(from); err != nil {
			_ = x.Close()
			return nil, err
		}
	}
	return x, nil
}

// errBuildStopped ends a background index build that is no longer wanted.
var errBuildStopped = errors.New("stream index build stopped")

// replayIndex feeds the index the records in [from, logEnd), holding the
// records of transactions in pending until their markers, as appends do.
// Below x.Next(), where a replay starts to hold again what open
// transactions wrote (replayStart), only transactional records are read:
// the index has the others, and the markers there were applied already.
// A closed stop (nil at open, where nothing stops it) ends it between
// chunks. With noteMoves, the stream moves of records above the high
// watermark are noted (noteStreamMoves): a background build replays
// records not durable yet. At open there are none, as the log is synced
// before the partition serves.
func (p *Partition) replayIndex(x *streams.Index, pending *streams.Pending, from, logEnd int64, limits batch.Limits, stop <-chan struct{}, noteMoves bool) error {
	const chunkBytes = 4 << 20
	covered := x.Next()
	if from < logEnd {
		p.logger.Info("stream index catching up with the log", "from", from, "to", logEnd)
	}
	var note func(map[string]int64)
	if noteMoves {
		note = p.noteStreamMoves
	}
	for from < logEnd {
		select {
		case <-stop:
			return errBuildStopped
		default:
		}
		if p.afterIndexChunk != nil {
			p.afterIndexChunk()
		}
		data, err := p.log.Read(from, chunkBytes, logEnd)
		if err != nil {
			return fmt.Errorf("stream index replay from offset %d: %w", from, err)
		}
		if len(data) == 0 {
			if start := p.log.StartOffset(); start > from {
				// Retention removed the segments past an emptied one under
				// a build's read (it reads without mu), which then ends
				// empty: the build starts again from the new log start
				// (replayFromStart) rather than skip what lies there.
				return fmt.Errorf("stream index replay at offset %d: the log now starts at %d: %w", from, start, storage.ErrOffsetOutOfRange)
			}
			// No batch left in [from, logEnd): a cleaner removed the last
			// ones (replayProducers), so the index covers the log's end.
			if err := x.SetNext(logEnd); err != nil {
				return err
			}
			break
		}
		change := x.NewChange()
		commit := func(next int64) error {
			if note != nil {
				note(change.Moved())
			}
			if err := x.Commit(change); err != nil {
				return err
			}
			change = x.NewChange()
			return x.SetNext(next)
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("stream index replay at offset %d: %w", from, err)
			}
			if err := p.replayBatch(x, pending, &change, h, whole, from, covered, limits, commit, note); err != nil {
				return err
			}
			from = h.NextOffset()
			data = rest
		}
		if err := commit(from); err != nil {
			return err
		}
	}
	return x.SetHeld(pending.First())
}

// replayBatch feeds one batch h (whole) read at or after from to the
// replay's change, or to pending for a transaction's batch; a marker first
// commits the change (what precedes it), then ends its transaction.
func (p *Partition) replayBatch(x *streams.Index, pending *streams.Pending, change **streams.Change, h batch.Header, whole []byte,
	from, covered int64, limits batch.Limits, commit func(int64) error, note func(map[string]int64)) error {
	if h.Control() {
		kind, err := markerOf(h, whole, limits)
		if err != nil || kind.kind == markerNone {
			return err
		}
		if h.BaseOffset < covered {
			pending.End(h.ProducerID) // applied when the index covered it
			return nil
		}
		if err := commit(h.BaseOffset); err != nil {
			return err
		}
		return p.endStreamTxn(x, pending, h, kind.kind == markerCommit, note)
	}
	holder := txnHolder([]batch.Header{h})
	if holder < 0 && h.NextOffset() <= covered {
		return nil
	}
	recs, err := batch.Records(whole, limits)
	if err != nil {
		return fmt.Errorf("stream index replay of batch %d: %w", h.BaseOffset, err)
	}
	c := *change
	if holder >= 0 {
		c = pending.Begin(*change, holder)
	}
	for _, r := range recs {
		if r.Offset < from || (holder < 0 && r.Offset < covered) {
			continue // the batch began before the start point
		}
		if err := c.Apply(r, r.Offset); err != nil {
			return fmt.Errorf("stream index replay at offset %d: %w", r.Offset, err)
		}
	}
	if holder >= 0 {
		pending.Hold(holder, c)
	}
	return nil
}

// setStreams turns the stream index on or off after a config change. Callers
// hold mu, and have stopped any build when turning it off.
//
// Turning it off closes the index but keeps its files: the revisions it gave
// cannot all be derived again once retention or compaction removed records,
// so a topic that becomes a stream topic again continues from them.
// Turning it on over a log longer than a build's tail builds the index in
// the background (buildIndex), so neither this lock nor the caller's is held
// for the replay.
func (p *Partition) setStreams(on bool) error {
	switch {
	case on && p.streamIdx == nil && p.build == nil:
		if p.log.NextOffset()-p.log.StartOffset() <= buildTailRecords {
			return p.openIndex() // a replay as short as a build's tail
		}
		b := &indexBuild{stop: make(chan struct{}), done: make(chan struct{})}
		p.build = b
		go p.buildIndex(b, p.cfg.Limits)
	case !on && p.streamIdx != nil:
		err := p.streamIdx.Close()
		p.streamIdx, p.streamTxns = nil, nil
		p.streamsHeld.Store(0)
		if err != nil {
			return fmt.Errorf("close stream index of %s-%d: %w", p.topic, p.index, err)
		}
	}
	return nil
}

// indexBuild is a stream index being built from the log in the background.
type indexBuild struct {
	stopOnce sync.Once
	stop     chan struct{} // closed to abandon the build
	done     chan struct{} // closed when the build goroutine returned
}

// Passes of the background replay: each replays what was appended during
// the previous one; the tail left after the last is replayed under mu.
const (
	buildPassesMax   = 8
	buildTailRecords = 4096
)

// buildIndex opens the index and replays the log into it without holding mu,
// pass after pass while appends continue, then replays the short tail
// appended meanwhile under mu and publishes the index. Appends carrying
// stream headers are refused (ErrStreamIndexBuilding) until then; others go
// in and are indexed by the replay. A failed build takes the partition
// offline, as a failing index does; the next open builds it again.
func (p *Partition) buildIndex(b *indexBuild, limits batch.Limits) {
	defer close(b.done)
	x, err := p.openIndexStore()
	pending := streams.NewPending()
	first := true // the first pass starts where open transactions began
	for pass := 0; err == nil && pass < buildPassesMax; pass++ {
		end := p.dataEnd()
		if end-x.Next() <= buildTailRecords {
			break
		}
		err = p.replayFromStart(x, pending, first, end, limits, b.stop)
		first = false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.build = nil
	if err == nil && p.closed {
		err = errBuildStopped
	}
	if err == nil {
		err = p.replayFromStart(x, pending, first, p.dataEnd(), limits, b.stop)
	}
	if err == nil {
		p.streamIdx, p.streamTxns = x, pending
		p.streamsHeld.Store(int64(pending.Streams()))
		p.logger.Info("stream index built", "covered", x.Next())
		return
	}
	if x != nil {
		_ = x.Close() // what it covers stays valid; a later build continues from it
	}
	if !errors.Is(err, errBuildStopped) {
		p.fail(fmt.Errorf("build stream index: %w", err))
	}
}

// replayFromStart replays [max(x.Next(), log start), end) for a build, or
// from where the open transactions began (replayStart) on the first pass,
// whose pending starts empty. A retention pass that began before the
// policy changed may still remove old segments while the build reads them
// without mu: a read that lost its segment starts again from the new log
// start, with pending emptied.
func (p *Partition) replayFromStart(x *streams.Index, pending *streams.Pending, first bool, end int64, limits batch.Limits, stop <-chan struct{}) error {
	const attemptsMax = 3
	for attempt := 1; ; attempt++ {
		if start := p.log.StartOffset(); start > x.Next() {
			if err := x.SetNext(start); err != nil {
				return err
			}
		}
		from := x.Next()
		if first || attempt > 1 {
			*pending = *streams.NewPending()
			from = p.replayStart(x)
		}
		err := p.replayIndex(x, pending, from, end, limits, stop, true)
		if err == nil || attempt == attemptsMax || !errors.Is(err, storage.ErrOffsetOutOfRange) ||
			p.log.StartOffset() <= x.Next() {
			return err
		}
	}
}

// stopIndexBuild abandons a background build and waits for it to end.
// Callers do not hold mu, which the build takes to finish.
func (p *Partition) stopIndexBuild() {
	p.mu.Lock()
	b := p.build
	p.mu.Unlock()
	if b == nil {
		return
	}
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.done
}

// indexBuilding reports whether a background build is running, during
// which the stream cleaner has no index to work from and waits.
func (p *Partition) indexBuilding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.build != nil
}

// carriesStreamHeaders reports whether a record asks for the stream checks
// (an expected revision) or is a stream operation: what an index being
// built cannot check yet.
func carriesStreamHeaders(recs [][]batch.Record) bool {
	for _, rs := range recs {
		for _, r := range rs {
			_, expected := streams.Header(r, streams.HeaderExpectedRevision)
			_, op := streams.Header(r, streams.HeaderStreamOp)
			if expected || op {
				return true
			}
		}
	}
	return false
}

// StreamIndex is the partition's stream index, for readers.
func (p *Partition) StreamIndex() (*streams.Index, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streamIdx == nil && p.build != nil {
		return nil, fmt.Errorf("%s-%d: %w", p.topic, p.index, ErrStreamIndexBuilding)
	}
	if p.streamIdx == nil {
		return nil, fmt.Errorf("%s-%d: %w", p.topic, p.index, ErrNoStreamIndex)
	}
	return p.streamIdx, nil
}

// noteStreamMoves records the streams whose state an append or a replay
// moves, until their records are durable: under stateMu, entries below the
// high watermark are never kept (advance drops those it passes), so every
// entry is a move a crash could take back.
func (p *Partition) noteStreamMoves(moved map[string]int64) {
	if len(moved) == 0 {
		return
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	for stream, offset := range moved {
		if offset < p.hwm {
			continue
		}
		if p.unsyncedMoves == nil {
			p.unsyncedMoves = make(map[string]int64, len(moved))
		}
		p.unsyncedMoves[stream] = offset
	}
}

// spareUnsynced leaves out of a cleaning the streams whose state moved by a
// record not yet durable: were a crash to take back a deletion or a
// truncation, the events it hid must still be in the log. They are cleaned
// at a later pass. It runs after their states were read, as readers do.
func (p *Partition) spareUnsynced(dead map[string]*deadStream) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	for stream := range dead {
		if _, pending := p.unsyncedMoves[stream]; pending {
			delete(dead, stream)
		}
	}
}

// WaitStreamDurable waits until every change to stream's state that the
// index may already show is durable. The index takes an append's changes
// as it is written, a group commit before they are durable: a reader calls
// this after reading a stream's state and before acting on it, so it never
// shows a deletion or metadata a crash could take back. Events need no
// wait: readers keep to entries below the high watermark.
func (p *Partition) WaitStreamDurable(ctx context.Context, stream string) error {
	p.stateMu.Lock()
	offset, pending := p.unsyncedMoves[stream]
	p.stateMu.Unlock()
	if !pending {
		return nil
	}
	return p.WaitDurable(ctx, offset)
}

// WaitStreamFree waits until no open transaction holds stream. A reader
// calls it before reading the stream's state: one part of an AppendMulti
// may be committed on its partition before the marker reaches another's,
// and a reader that saw the first must not then find the second's stream
// as it was before (docs/transactions.md). The wait ends at the marker,
// which the coordinator writes once the transaction's outcome is durable.
func (p *Partition) WaitStreamFree(ctx context.Context, stream string) error {
	for p.streamsHeld.Load() > 0 {
		changed := p.Changed() // before the check, so no marker is missed
		p.mu.Lock()
		held := false
		if p.streamTxns != nil {
			_, held = p.streamTxns.Holder(stream)
		}
		p.mu.Unlock()
		if !held {
			return nil
		}
		if err := p.Err(); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
			// Damage found here takes the partition offline as a fetch
			// finding it does (classifyReadError).
			data, err := p.log.Read(off, 1, hwm)
			if err != nil {
				return nil, p.classifyReadError(err, off)
			}
			h, whole, _, err := batch.Next(data)
			if err != nil {
				return nil, p.classifyReadError(err, off)
			}
			if cached, err = batch.Records(whole, lim); err != nil {
				return nil, p.classifyReadError(err, h.BaseOffset)
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
