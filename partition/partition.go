package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// Files the partition keeps beside the storage layer's segments.
const (
	producerStateFile = "producer-state.json"
	leaderEpochsFile  = "leader-epochs.json"
)

// Partition is one partition of a topic. Every method is safe for concurrent use.
type Partition struct {
	topic  string
	index  int32
	dir    string
	fsys   vfs.FS
	logger *slog.Logger
	clock  env.Clock // checkpoint intervals, producer expiry, append times

	configMu sync.Mutex // config changes take turns; taken before mu

	mu        sync.Mutex // the single writer: see doc.go
	cfg       Config
	log       *storage.Log
	producers *producerState
	// verified holds, by producer, the verification of its transaction
	// with the coordinator (VerifyStart, BeginTransaction) until a marker
	// ends it or a leadership change drops them all (a marker may be
	// written on another node meanwhile); guards numbers the
	// verifications, and guardsDropped is the last guard such a change
	// dropped.
	verified      map[int64]verification
	guards        uint64
	guardsDropped uint64
	epochRecorded bool           // the current epoch's first offset is persisted
	streamIdx     *streams.Index // cleanup.policy=stream only
	// streamTxns holds the stream changes of the transactions open here
	// until their markers (single-writer stream topics; with streamIdx).
	streamTxns *streams.Pending
	// streamsHeld is streamTxns.Streams(), for readers that do not take mu.
	streamsHeld    atomic.Int64
	build          *indexBuild // a stream index being built after a config change
	lastCheckpoint time.Time
	closed         bool
	// installs counts the snapshot installs begun (replicated mode): a
	// cleaner pass that read segments before one must not replace what
	// the install put in their place (replaceSegment).
	installs uint64

	// epochMu guards epochs. It is a leaf lock never held across I/O, so
	// the epoch lookups of every Metadata and Fetch never wait for a
	// checkpoint's fsyncs under mu.
	epochMu sync.Mutex
	epochs  *epochHistory
	// term is the group's current term (replicated mode): the leader epoch.
	term uint64

	// snapshotMu orders producer-state snapshot writes, which run without
	// mu (or, before the log start advances, with it: mu comes first).
	snapshotMu sync.Mutex
	// snapshotOffset is the log offset of the newest snapshot written.
	snapshotOffset int64

	// txns is the readers' view of the transactions (txn.go), replaced
	// under mu; readers load it without any lock.
	txns atomic.Pointer[txnView]

	stateMu sync.Mutex
	// hwm: the synced log end offset; in the replicated mode, the offset
	// after the last applied data batch.
	hwm     int64
	synced  int64         // the segments' synced log end offset
	failure error         // set once; the partition is offline after it
	changed chan struct{} // closed and replaced when hwm or failure changes
	// unsyncedMoves maps a stream to the offset of its last record, not yet
	// durable, that moved its state beyond its last revision (see
	// streams.Change.Moved). Entries go when the high watermark passes them.
	unsyncedMoves map[string]int64
	// Replicated mode: the term this replica is the ready leader of (0:
	// none), the end of what its own log holds durably of what it
	// proposed in that term, and the last applied entry.
	servingTerm               uint64
	localDurable              termEnd
	appliedIndex, appliedTerm uint64
	// full is the failed write of the Raft log, for lack of space, that
	// stopped the replica in its term (zero: none): that term's waiters
	// and the appends refused until the group knows a leader again get
	// its error (replicadiskfull.go).
	full termFull

	kick        chan struct{} // wakes the flusher
	stopFlusher chan struct{}
	flusherDone chan struct{}
	// syncer, when set (Config.Syncer at open), runs the flusher's log
	// syncs with the other partitions of the node; syncDone is where the
	// flusher's one outstanding request is answered.
	syncer   *Syncer
	syncDone chan syncResult

	// afterValidate, when set by a test, runs between an append's
	// validation and its taking of mu, where a config change may land.
	afterValidate func()
	// waitingTurn, when set by a test, runs when an append starts waiting
	// for its streams' turn (replicated mode).
	waitingTurn func()
	// afterIndexChunk, when set by a test, runs before each chunk of a
	// stream index replay.
	afterIndexChunk func()
	// afterFlush, when set by a test before its first append, runs on the
	// flusher after each round of syncs, told whether it checkpointed.
	afterFlush func(checkpointed bool)
	// beforeClose, when set by a test, runs first in Close and Delete: it
	// stops the replica driving a replicated partition, as a node removes
	// the group before it closes the partition whose Raft log it reads.
	beforeClose func()

	// repl is set when the partition is a replica's state machine
	// (OpenReplica); see replicated.go. raft is then the group's Raft log,
	// whose segments are log, and producersNext the offset producer state
	// covers (under mu): past the high watermark after a restart, when a
	// producer snapshot was written after raft-state's applied index.
	repl          *replicated
	raft          *raftlog.Log
	producersNext int64
	// snapshots hands the producer-state copies Apply takes at checkpoints
	// to the flusher, which writes them off the replica's goroutine.
	snapshots chan producerSnapshotCopy
}

// Open opens (recovering if needed) the partition stored in dir on e's
// filesystem; e's clock times its checkpoints, producer expiry and
// LogAppendTime. Each open is a new leader epoch, so clients that cached the
// previous one re-validate their positions with OffsetForLeaderEpoch.
func Open(e env.Env, dir, topic string, index int32, cfg Config) (*Partition, error) {
	return openMode(e, dir, topic, index, cfg, nil)
}

// openMode opens the partition in either mode: repl is nil for a partition that
// is its own single writer, set for one that is a replica's state machine.
func openMode(e env.Env, dir, topic string, index int32, cfg Config, repl *replicated) (*Partition, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("partition %s-%d config: %w", topic, index, err)
	}
	p := &Partition{
		topic: topic, index: index, dir: dir, fsys: e.FS, clock: e.Clock,
		logger:         e.Logger.With("topic", topic, "partition", index),
		cfg:            cfg,
		lastCheckpoint: e.Clock.Now(),
		changed:        make(chan struct{}),
		kick:           make(chan struct{}, 1),
		stopFlusher:    make(chan struct{}),
		flusherDone:    make(chan struct{}),
		snapshots:      make(chan producerSnapshotCopy, 1),
		repl:           repl,
		syncer:         cfg.Syncer,
		syncDone:       make(chan syncResult, 1),
	}
	if err := p.openLog(e, cfg); err != nil {
		return nil, fmt.Errorf("open partition %s-%d: %w", topic, index, err)
	}
	if err := p.loadState(); err != nil {
		p.closeLog()
		return nil, fmt.Errorf("open partition %s-%d: %w", topic, index, err)
	}
	if cfg.Streams {
		if err := p.openIndex(); err != nil {
			p.closeLog()
			return nil, fmt.Errorf("open partition %s-%d: %w", topic, index, err)
		}
	}
	if repl != nil {
		// The replica's storage syncs the log; the flusher only writes the
		// producer snapshots Apply copies.
		go p.writeSnapshots()
		return p, nil
	}
	// After a process crash, validated bytes past the recovery point may sit
	// only in the page cache: sync them before any consumer can see them.
	synced, err := p.log.Sync()
	if err != nil {
		p.closeLog()
		return nil, fmt.Errorf("open partition %s-%d: sync recovered log: %w", topic, index, err)
	}
	p.hwm, p.synced = synced, synced
	go p.flush()
	return p, nil
}

// openLog opens the segments, or in the replicated mode the Raft log over
// them, whose applied entries are what the partition serves: the high
// watermark starts at the offset after the applied index.
func (p *Partition) openLog(e env.Env, cfg Config) error {
	nowMs := e.Clock.Now().UnixMilli()
	if p.repl == nil {
		log, err := storage.Open(e.FS, p.dir, cfg.Storage, nowMs)
		p.log = log
		return err
	}
	rl, err := raftlog.Open(e.FS, p.dir, cfg.Storage, nowMs)
	if errors.Is(err, raftlog.ErrStateMissing) {
		rl, err = raftlog.Create(e.FS, p.dir, cfg.Storage, p.repl.boot, nowMs)
	}
	if err != nil {
		return err
	}
	p.raft, p.log = rl, rl.Segments()
	rl.SetSnapshotData(p.snapshotState)
	rl.SetInstallPrepare(p.prepareInstall)
	if p.repl.copiesSnapshots {
		rl.RequireStagedData()
	}
	hs, cs, err := rl.InitialState()
	if err == nil {
		p.hwm, err = rl.OffsetOf(hs.GetCommit() + 1)
	}
	if err != nil {
		_ = rl.Close()
		return fmt.Errorf("applied offset: %w", err)
	}
	// raft-state's ConfState is the one the last change at or below the
	// applied index made.
	if c := rl.LastConfChange(hs.GetCommit()); c > 0 {
		p.repl.confAt[c] = cs
	}
	return nil
}

// closeLog closes what openLog opened, after a failed open.
func (p *Partition) closeLog() {
	if p.raft != nil {
		_ = p.raft.Close()
		return
	}
	_ = p.log.Close()
}

// dataEnd is where the partition's state ends: the log end of a single
// writer, the applied end (the high watermark) of a replica, whose log
// holds entries not committed yet.
func (p *Partition) dataEnd() int64 {
	if p.repl != nil {
		return p.HighWatermark()
	}
	return p.log.NextOffset()
}

// loadState restores leader epochs and producer state and, unless the
// partition is replicated (where the leader epoch is the Raft term and the
// Raft log keeps the terms), begins a new epoch.
func (p *Partition) loadState() error {
	logEnd := p.dataEnd()
	epochs := &epochHistory{}
	if p.repl == nil {
		var err error
		if epochs, err = p.readEpochs(); err != nil {
			return err
		}
		epochs.truncateTo(logEnd)
		p.beginOpenEpoch(epochs, logEnd)
	}
	p.epochMu.Lock()
	p.epochs = epochs
	p.epochMu.Unlock()

	nowMs := p.clock.Now().UnixMilli()
	p.producers = newProducerState()
	from := p.log.StartOffset()
	if data, err := vfs.ReadFile(p.fsys, path.Join(p.dir, producerStateFile)); err == nil {
		state, next, err := unmarshalProducerState(data, nowMs)
		if err != nil {
			return err
		}
		// The snapshot is taken before the log start ever advances, so it
		// covers producers whose batches retention or DeleteRecords removed.
		// A replica's may be past raft-state's applied index, even past the
		// segments' end after a snapshot install: it covers committed
		// entries, which Apply passes over when raft delivers them again.
		if next <= logEnd || p.repl != nil {
			p.producers, from = state, max(next, from)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read producer state: %w", err)
	}
	if err := p.replayProducers(from, logEnd, nowMs); err != nil {
		return err
	}
	p.producersNext = max(from, logEnd)
	p.producers.expire(nowMs, p.cfg.ProducerIDExpirationMs)
	p.producers.trimAborted(p.log.StartOffset())
	p.publishTxns(nil)
	return nil
}

// readEpochs reads the single writer's leader-epoch history.
func (p *Partition) readEpochs() (*epochHistory, error) {
	data, err := vfs.ReadFile(p.fsys, path.Join(p.dir, leaderEpochsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &epochHistory{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leader epochs: %w", err)
	}
	return unmarshalEpochHistory(data)
}

// beginOpenEpoch starts the epoch of this open at logEnd.
func (p *Partition) beginOpenEpoch(epochs *epochHistory, logEnd int64) {
	// The new epoch is persisted with its first append (see Append): opening
	// thousands of partitions then costs no write each, and an epoch that
	// wrote nothing is harmlessly reused after the next restart.
	epochs.begin(epochs.current()+1, logEnd)
	p.epochRecorded = false
}

// replayProducers brings producer state up to logEnd from the batches in
// [from, logEnd), counting them as appended at nowMs: the log does not say
// when a batch was appended, and keeping a producer one expiration period
// too long is harmless where forgetting it early is not.
func (p *Partition) replayProducers(from, logEnd, nowMs int64) error {
	const chunkBytes = 4 << 20
	for from < logEnd {
		data, err := p.log.Read(from, chunkBytes, logEnd)
		if err != nil {
			return fmt.Errorf("replay producer state from offset %d: %w", from, err)
		}
		if len(data) == 0 {
			// No batch left in [from, logEnd): a cleaner removed the last
			// ones a snapshot did not cover, and a crash lost the later
			// records that replaced them, which this replica had not
			// synced (its group had: it gets them again).
			return nil
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("replay producer state at offset %d: %w", from, err)
			}
			kind, err := markerOf(h, whole, p.cfg.Limits)
			if err != nil {
				return fmt.Errorf("replay producer state: %w", err)
			}
			p.producers.recordBatch(h, kind, nowMs)
			from = h.NextOffset()
			data = rest
		}
	}
	return nil
}

func (p *Partition) persistEpochs() error {
	p.epochMu.Lock()
	data, err := p.epochs.marshal()
	p.epochMu.Unlock()
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(p.fsys, path.Join(p.dir, leaderEpochsFile), data); err != nil {
		return fmt.Errorf("write leader epochs: %w", err)
	}
	return nil
}

// producerSnapshotCopy is a copy of producer state and the log end it covers.
type producerSnapshotCopy struct {
	state      *producerState
	nextOffset int64
}

// copyProducers copies producer state at the current log end, so that it can
// be encoded and written without mu. Callers hold mu.
func (p *Partition) copyProducers() producerSnapshotCopy {
	next := p.log.NextOffset()
	if p.repl != nil {
		next = max(p.producersNext, p.HighWatermark())
	}
	return producerSnapshotCopy{state: p.producers.clone(), nextOffset: next}
}

// writeProducers encodes and durably writes a copy of producer state, unless
// a snapshot of a later log offset was written meanwhile: snapshots only move
// forward, so the one taken before retention deleted segments is never
// replaced by an older one that still needs those segments for its replay.
// Callers may hold mu, which comes before snapshotMu.
func (p *Partition) writeProducers(snap producerSnapshotCopy) error {
	p.snapshotMu.Lock()
	defer p.snapshotMu.Unlock()
	if snap.nextOffset < p.snapshotOffset {
		return nil
	}
	data, err := snap.state.marshal(snap.nextOffset)
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(p.fsys, path.Join(p.dir, producerStateFile), data); err != nil {
		return fmt.Errorf("write producer state: %w", err)
	}
	p.snapshotOffset = snap.nextOffset
	return nil
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// Index is the partition number within its topic.
func (p *Partition) Index() int32 { return p.index }

// LeaderEpoch is the current leader epoch. It never waits for the writer.
func (p *Partition) LeaderEpoch() int32 {
	p.epochMu.Lock()
	defer p.epochMu.Unlock()
	if p.repl != nil {
		return int32(min(p.term, maxEpoch))
	}
	return p.epochs.current()
}

// HighWatermark is the offset after the last durable record: what consumers may read.
func (p *Partition) HighWatermark() int64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.hwm
}

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.StartOffset() }

// LogEndOffset is the offset the next appended record gets (it may not be durable yet).
func (p *Partition) LogEndOffset() int64 { return p.log.NextOffset() }

// Limits bound the decoding of one of the partition's batches: the limits
// its appends were checked against, so a reader that decodes what the
// partition stored (the event store, coordinators, connectors) takes
// every batch the partition accepted. It takes the writer's lock: a
// reader asks once per read, not per batch.
func (p *Partition) Limits() batch.Limits { return p.config().Limits }

// Err returns the failure that took the partition offline, or nil.
func (p *Partition) Err() error {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.failure
}

// Changed returns a channel closed at the next high watermark advance or
// failure. Long-polling fetches select on it across many partitions.
func (p *Partition) Changed() <-chan struct{} {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.changed
}

// SizeBytes is the total size of the partition's segments.
func (p *Partition) SizeBytes() int64 {
	var total int64
	for _, s := range p.log.Segments() {
		total += s.SizeBytes
	}
	return total
}

// SetConfig applies a changed topic configuration. Turning cleanup.policy
// stream on over a non-empty log starts building the stream index in the
// background (see setStreams); until it is ready, StreamIndex and appends
// that need it answer ErrStreamIndexBuilding.
func (p *Partition) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.configMu.Lock()
	defer p.configMu.Unlock()
	if !cfg.Streams {
		p.stopIndexBuild()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	if err := p.log.SetConfig(cfg.Storage); err != nil {
		return fmt.Errorf("partition %s-%d: %w", p.topic, p.index, err)
	}
	p.cfg = cfg
	return p.setStreams(cfg.Streams)
}

func (p *Partition) config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// fail takes the partition offline for good and wakes every waiter.
func (p *Partition) fail(err error) (first bool) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.failure != nil {
		return false
	}
	p.failure = fmt.Errorf("%w: %s-%d: %v", ErrStorageFailed, p.topic, p.index, err)
	p.logger.Error("partition offline after storage failure", "err", err)
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

func (p *Partition) advance(hwm int64) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if hwm <= p.hwm {
		return
	}
	p.hwm = hwm
	for stream, offset := range p.unsyncedMoves {
		if offset < hwm {
			delete(p.unsyncedMoves, stream)
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// WaitDurable blocks until offset is below the high watermark, the partition
// fails, or ctx ends. It is how acks=all produces wait for the group commit.
// On a replicated partition producers wait with WaitCommitted instead: an
// offset below the high watermark there may hold another leader's batch.
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error {
	for {
		p.stateMu.Lock()
		hwm, failure, ch := p.hwm, p.failure, p.changed
		p.stateMu.Unlock()
		if failure != nil {
			return failure
		}
		if offset < hwm {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush is the group-commit goroutine: it syncs whatever was appended while
// the previous sync ran, so one fdatasync serves every producer waiting.
func (p *Partition) flush() {
	defer close(p.flusherDone)
	for {
		select {
		case <-p.kick:
		case <-p.stopFlusher:
			p.syncPending()
			return
		}
		if !p.syncPending() {
			continue
		}
		checkpointed := p.maybeCheckpoint()
		if p.afterFlush != nil {
			p.afterFlush(checkpointed)
		}
	}
}

// writeSnapshots is a replica's flusher: it writes the producer-state
// copies Apply hands over, so neither Apply nor appends wait for their
// fsyncs.
func (p *Partition) writeSnapshots() {
	defer close(p.flusherDone)
	for {
		select {
		case snap := <-p.snapshots:
			if err := p.writeProducers(snap); err != nil {
				p.logger.Warn("producer state snapshot failed", "err", err)
			}
		case <-p.stopFlusher:
			return
		}
	}
}

// syncPending syncs until nothing appended is unsynced; false after a failure.
func (p *Partition) syncPending() bool {
	for p.Err() == nil && p.log.NextOffset() > p.syncedEnd() {
		synced, err := p.syncLog()
		if err != nil {
			p.fail(fmt.Errorf("sync: %w", err))
			return false
		}
		p.noteSynced(synced)
	}
	return p.Err() == nil
}

// syncLog syncs the log on the flusher's goroutine, through the node's
// Syncer when the partition shares one.
func (p *Partition) syncLog() (int64, error) {
	if p.syncer != nil {
		return p.syncer.sync(p.log, p.syncDone)
	}
	start := p.clock.Now()
	synced, err := p.log.Sync()
	syncSeconds.Observe(p.clock.Now().Sub(start).Seconds())
	return synced, err
}

func (p *Partition) syncedEnd() int64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.synced
}

// noteSynced records the segments' synced end, which is the high watermark
// unless the partition is replicated: there the high watermark follows what
// the group applied (see Apply), and this sync only bounds recovery.
func (p *Partition) noteSynced(synced int64) {
	p.stateMu.Lock()
	p.synced = max(p.synced, synced)
	p.stateMu.Unlock()
	if p.repl == nil {
		p.advance(synced)
	}
}

// maybeCheckpoint records a recovery point now and then, bounding how much a
// restart after a crash validates, expires idle producers and snapshots
// producer state. Only the checkpoint and a copy of producer state hold mu:
// the snapshot is encoded and written while appends go on. True when a
// checkpoint was recorded.
func (p *Partition) maybeCheckpoint() bool {
	snap, ok := p.checkpoint()
	if !ok {
		return false
	}
	if err := p.writeProducers(snap); err != nil {
		// The snapshot only shortens the replay at the next start; the log
		// itself is intact, so keep serving and say why the next start may be slower.
		p.logger.Warn("producer state snapshot failed", "err", err)
	}
	return true
}

// checkpoint records a recovery point when one is due, expires idle
// producers and returns a copy of producer state at the checkpointed log
// end; false when no checkpoint was due or it failed.
func (p *Partition) checkpoint() (producerSnapshotCopy, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	if p.closed || now.Sub(p.lastCheckpoint) < time.Duration(p.cfg.CheckpointIntervalMs)*time.Millisecond {
		return producerSnapshotCopy{}, false
	}
	p.lastCheckpoint = now
	if err := p.log.Checkpoint(); err != nil {
		p.fail(fmt.Errorf("checkpoint: %w", err))
		return producerSnapshotCopy{}, false
	}
	if n := p.producers.expire(now.UnixMilli(), p.cfg.ProducerIDExpirationMs); n > 0 {
		p.logger.Debug("expired idle producers", "producers", n)
	}
	p.producers.trimAborted(p.log.StartOffset())
	p.publishTxns(nil)
	return p.copyProducers(), true
}

// Close syncs what is pending, records a clean recovery point and closes the
// files, so the next Open validates nothing. A replicated partition closes
// once its replica stopped: the replica reads and writes the Raft log Close
// closes.
func (p *Partition) Close() error {
	if p.beforeClose != nil {
		p.beforeClose()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true // no build starts after this
	p.mu.Unlock()
	p.stopIndexBuild()
	close(p.stopFlusher)
	<-p.flusherDone

	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.Err() == nil {
		if err := p.writeProducers(p.copyProducers()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.closeLogs(); err != nil {
		errs = append(errs, fmt.Errorf("close partition %s-%d: %w", p.topic, p.index, err))
	}
	if p.streamIdx != nil {
		if err := p.streamIdx.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close partition %s-%d: %w", p.topic, p.index, err))
		}
	}
	p.failClosed()
	return errors.Join(errs...)
}

// closeLogs closes the segments, or the Raft log over them after a
// checkpoint recording what was applied (the replica is stopped by now).
func (p *Partition) closeLogs() error {
	if p.raft == nil {
		return p.log.Close()
	}
	var errs []error
	if p.Err() == nil {
		if err := p.raft.Checkpoint(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, p.raft.Close())...)
}

// failClosed wakes waiters of a closed partition with ErrClosed.
func (p *Partition) failClosed() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.failure == nil {
		p.failure = fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// Delete closes the partition and removes its files.
func (p *Partition) Delete() error {
	if p.beforeClose != nil {
		p.beforeClose()
	}
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.mu.Unlock()
		p.stopIndexBuild()
		close(p.stopFlusher)
		<-p.flusherDone
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	p.failClosed()
	var errs []error
	if p.streamIdx != nil {
		if err := p.streamIdx.Delete(); err != nil {
			errs = append(errs, fmt.Errorf("delete partition %s-%d: %w", p.topic, p.index, err))
		}
	}
	if p.raft != nil {
		_ = p.raft.Close() // raft-meta's file; Delete removes every file
	}
	if err := p.log.Delete(); err != nil {
		errs = append(errs, fmt.Errorf("delete partition %s-%d: %w", p.topic, p.index, err))
	}
	return errors.Join(errs...)
}

// classifyWriteError maps a storage write error to the partition's vocabulary
// and fails the partition when the log could not keep itself consistent.
func (p *Partition) classifyWriteError(err error) error {
	switch {
	case errors.Is(err, storage.ErrFailed):
		p.fail(err)
		return p.Err()
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %s-%d: %v", ErrDiskFull, p.topic, p.index, err)
	default:
		return fmt.Errorf("%w: %s-%d: %v", ErrWrite, p.topic, p.index, err)
	}
}

// snapshotBeforeTrim makes the log durable and snapshots producer state, so
// that removing old batches never removes what producer state was built
// from. Callers hold mu.
func (p *Partition) snapshotBeforeTrim() error {
	checkpoint := p.log.Checkpoint
	if p.raft != nil {
		checkpoint = p.raft.Checkpoint
	}
	if err := checkpoint(); err != nil {
		return p.classifyWriteError(err)
	}
	if err := p.writeProducers(p.copyProducers()); err != nil {
		return p.classifyWriteError(err)
	}
	return nil
}
