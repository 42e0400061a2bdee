package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/journal"
	"github.com/cairnlog/cairn/storage"
)

// SyncWorkersDefault is how many fdatasyncs a node's Syncer runs at once.
// Syncs of different files overlap on the device (ext4 commits the
// journal for many at once), so a round of 1,000 dirty files took about
// 15 times longer one at a time than 64 at once; 64 at once was about as
// quick as 1,000 at once (quicker in 6 rounds of 9), without a blocked
// thread per partition (bench/results/2026-12-06-sharedsync.md).
const SyncWorkersDefault = 64

// Syncer runs the log syncs of the single-writer partitions of a node
// that share it (Config.Syncer). Without one, every partition's flusher
// calls fdatasync itself: with a thousand partitions each receiving a
// little data, a thousand fdatasyncs are in flight at once, one OS thread
// blocked in each, and a produce touching all of them waits for the
// slowest. With one, a flusher with pending data queues its partition
// (at most once: it waits for the answer) and a fixed set of workers
// takes the queue in order, so each round over the dirty partitions runs
// at most SyncWorkers fdatasyncs at a time, and what a partition
// appends while it waits in the queue joins its sync (group commit across
// partitions). Each sync is still the partition's own storage.Log.Sync,
// covering everything appended before it started, and its flusher raises
// the high watermark only after it returned nil: the durability contract
// is the one of a flusher syncing alone.
//
// With a journal (UseJournal), a worker that finds at least
// JournalMinPartitions partitions waiting (queued, or syncing alone) takes
// the queued ones as one round: it
// copies each one's unsynced batches (storage.Log.UnsyncedTail) into a
// journal record, writes the round with one write and one fdatasync of the
// journal file, and answers each partition with the end of what its record
// holds. A round of a thousand partitions then costs the device one sync
// instead of a thousand (each a separate file's data and size). A
// partition whose unsynced data does not fit a record (after a segment
// roll, a directory change, or more than journalTailMax) goes back to the
// queue to be synced alone. Up to journalRoundsMax rounds are written at
// once, sharing the journal's fdatasyncs; the workers meanwhile take such
// single syncs only. The journal keeps a file
// until every partition with a record in it has synced its own files past
// that record (its checkpoints do, every RecoveryCheckpointInterval) or is
// closed; with more than journalHeldFilesMax such files, the workers sync
// the partitions holding the oldest one back (forced syncs).
//
// Close stops the workers once the queue is empty; a sync asked for after
// Close runs on the caller's goroutine.
type Syncer struct {
	clock   env.Clock // times each sync (timedSync)
	workers sync.WaitGroup

	mu      sync.Mutex
	queue   []*syncRequest // FIFO; one entry per waiting flusher at most
	wake    *sync.Cond     // signalled when queue grows, a round ends or closed is set
	closed  bool
	running int // syncs running now, for tests
	peak    int // most syncs ever running at once, for tests

	// The journal, when UseJournal set one; nil after it failed.
	journal     *journal.Journal
	journalMin  int
	logger      *slog.Logger
	journaling  int // rounds being written
	journalable int // queued requests a round may take
	// soloJournalable counts syncs running alone for requests a round
	// could have taken: with the queued ones, how many partitions wait.
	soloJournalable int
	// held is, per journal file, the logs with records in it and the end of
	// their last record there; forced counts forced syncs not yet run.
	held   map[uint64]map[*storage.Log]int64
	forced int
	// roundBuf is the last round's buffer, reused (journalBufferKept).
	roundBuf []byte
	// replay is the records the journal held at the node's start, by
	// partition, until FinishReplay; replayFiles the files holding them.
	replay      map[journal.Key][]journal.Record
	replayFiles []uint64
}

// JournalMinPartitions is how many partitions must wait for a sync at
// once for a worker to write them as one journal round; fewer sync their
// own files, which costs no copy.
const JournalMinPartitions = 8

const (
	// journalTailMax bounds the unsynced bytes of one partition a round
	// copies; a partition with more syncs its own files, where one large
	// sequential sync costs about what the journal's would.
	journalTailMax = 16 << 20
	// journalHeldFilesMax is how many full journal files may wait for
	// their partitions' own syncs before the workers force them.
	journalHeldFilesMax = 16
	// journalRoundMax bounds the bytes one round copies and writes; the
	// partitions past it wait for the next round.
	journalRoundMax = 64 << 20
	// journalBufferKept is the largest round buffer kept for the next
	// round; a larger one goes back to the garbage collector.
	journalBufferKept = 16 << 20
	// journalRoundsMax is how many rounds may be written at once: a
	// produce request appends to its partitions one after another, so
	// their flushers queue over time, and a round taking what is queued
	// now need not wait for the one before it to be synced (the journal
	// shares one fdatasync among the rounds written meanwhile).
	journalRoundsMax = 4
)

// syncRequest is one flusher's wait for a sync of its log, or a forced
// sync freeing a journal file (no one waits on done).
type syncRequest struct {
	log  *storage.Log
	key  journal.Key     // zero: never journaled
	done chan syncResult // buffered 1: a worker never waits on it
	// direct: sync the log's own files (its tail did not fit a journal
	// record, or the sync is forced).
	direct bool
	forced bool
	// counted: taken alone while a round could have taken it
	// (soloJournalable).
	counted bool
}

type syncResult struct {
	synced int64
	err    error
}

// NewSyncer starts a Syncer running at most workers syncs at once
// (SyncWorkersDefault when 0), timed on clock.
func NewSyncer(clock env.Clock, workers int) (*Syncer, error) {
	if workers == 0 {
		workers = SyncWorkersDefault
	}
	if workers < 0 {
		return nil, fmt.Errorf("syncer: %d workers: must be positive", workers)
	}
	s := &Syncer{clock: clock, held: map[uint64]map[*storage.Log]int64{}}
	s.wake = sync.NewCond(&s.mu)
	s.workers.Add(workers)
	for range workers {
		go s.work()
	}
	return s, nil
}

// UseJournal makes the Syncer write rounds of at least minPartitions
// (JournalMinPartitions when 0) partitions to j, whose files held records
// (journal.Open's, oldest first): partitions opening with a journal key
// replay theirs (replayRecords) until FinishReplay. Call it before any
// partition with a journal key opens. The Syncer closes j when it closes.
func (s *Syncer) UseJournal(j *journal.Journal, records []journal.Record, minPartitions int, logger *slog.Logger) {
	if minPartitions <= 0 {
		minPartitions = JournalMinPartitions
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal, s.journalMin, s.logger = j, minPartitions, logger
	s.replay = map[journal.Key][]journal.Record{}
	for _, r := range records {
		s.replay[r.Key] = append(s.replay[r.Key], r)
	}
	files := j.Files()
	s.replayFiles = files[:len(files)-1] // the last is the new one
}

// replayRecords returns the start's journal records of the partition key.
func (s *Syncer) replayRecords(key journal.Key) []journal.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replay[key]
}

// FinishReplay is called once the node opened its partitions (each synced
// what it replayed): the start's records are dropped except those of the
// partitions keep names (ones that could not open, whose next start
// replays them), and when none is kept, the files holding them are
// removed.
func (s *Syncer) FinishReplay(keep func(journal.Key) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.replay {
		if !keep(key) {
			delete(s.replay, key)
		}
	}
	if len(s.replay) > 0 || s.journal == nil {
		return
	}
	for _, seq := range s.replayFiles {
		if err := s.journal.Remove(seq); err != nil {
			s.logger.Warn("removing a node journal file", "file", seq, "err", err)
			return
		}
	}
	s.replay, s.replayFiles = nil, nil
}

// errSyncerClosed is a request refused by a closed Syncer; never returned
// to a partition, whose flusher then syncs itself.
var errSyncerClosed = errors.New("syncer closed")

// sync makes log durable up to its end when the call began, through the
// workers, and returns the durable end as storage.Log.Sync does. A
// partition with a journal key may be made durable by a journal round.
func (s *Syncer) sync(log *storage.Log, key journal.Key, done chan syncResult) (int64, error) {
	req := &syncRequest{log: log, key: key, done: done}
	if err := s.enqueue(req); err != nil {
		return s.timedSync(log)
	}
	r := <-done
	return r.synced, r.err
}

func (s *Syncer) enqueue(req *syncRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSyncerClosed
	}
	s.push(req)
	return nil
}

// push queues req; the caller holds mu.
func (s *Syncer) push(req *syncRequest) {
	s.queue = append(s.queue, req)
	if s.isJournalable(req) {
		s.journalable++
	}
	s.wake.Signal()
}

func (s *Syncer) isJournalable(req *syncRequest) bool {
	return s.journal != nil && !req.direct && req.key.Name != ""
}

// work runs queued syncs and journal rounds until the Syncer is closed and
// the queue empty, so no flusher that queued is left waiting.
func (s *Syncer) work() {
	defer s.workers.Done()
	for {
		reqs, round, ok := s.next()
		if !ok {
			return
		}
		if round {
			s.journalRound(reqs)
			continue
		}
		req := reqs[0]
		synced, err := s.timedSync(req.log)
		s.mu.Lock()
		s.running--
		if req.forced {
			s.forced--
		}
		if req.counted {
			s.soloJournalable--
			if s.journalable > 0 {
				s.wake.Broadcast() // fewer wait: one may go alone now
			}
		}
		s.mu.Unlock()
		req.done <- syncResult{synced: synced, err: err}
	}
}

// timedSync syncs log, timing the sync alone (not its wait in the queue)
// for cairn_partition_sync_seconds.
func (s *Syncer) timedSync(log *storage.Log) (int64, error) {
	start := s.clock.Now()
	synced, err := log.Sync()
	syncSeconds.Observe(s.clock.Now().Sub(start).Seconds())
	return synced, err
}

// next takes either every journalable request as a round (true) or one
// request to sync alone, waiting for work; ok is false once closed and
// empty. Journalable requests go as a round once at least journalMin
// partitions wait (queued, or syncing alone), up to journalRoundsMax
// rounds at once; fewer
// go alone, costing no copy (a single busy partition never uses the
// journal).
func (s *Syncer) next() (reqs []*syncRequest, round, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		many := s.journal != nil && s.journalable > 0 && s.journalable+s.soloJournalable >= s.journalMin
		switch {
		case many && s.journaling < journalRoundsMax:
			s.journaling++
			return s.takeJournalable(), true, true
		case many:
			// The next round waits for this one; syncs of their own may go.
			if i := s.firstDirect(); i >= 0 {
				return []*syncRequest{s.take(i)}, false, true
			}
		case len(s.queue) > 0:
			return []*syncRequest{s.take(0)}, false, true
		case s.closed:
			return nil, false, false
		}
		s.wake.Wait()
	}
}

// take removes queue[i] to sync it alone; the caller holds mu.
func (s *Syncer) take(i int) *syncRequest {
	req := s.queue[i]
	if s.isJournalable(req) {
		s.journalable--
		req.counted = true
		s.soloJournalable++
	}
	s.queue = append(s.queue[:i], s.queue[i+1:]...)
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go after a burst
	}
	s.running++
	s.peak = max(s.peak, s.running)
	return req
}

func (s *Syncer) firstDirect() int {
	for i, req := range s.queue {
		if !s.isJournalable(req) {
			return i
		}
	}
	return -1
}

// takeJournalable removes the journalable requests from the queue; the
// caller holds mu.
func (s *Syncer) takeJournalable() []*syncRequest {
	var round, rest []*syncRequest
	for _, req := range s.queue {
		if s.isJournalable(req) {
			round = append(round, req)
		} else {
			rest = append(rest, req)
		}
	}
	s.queue, s.journalable = rest, 0
	return round
}

// journalRound writes the unsynced tails of reqs' logs to the journal as
// one round and answers each with the end of its record; the logs whose
// tail does not fit go back to the queue to be synced alone. Each tail is
// read from its segment straight into the round's buffer.
func (s *Syncer) journalRound(reqs []*syncRequest) {
	var (
		tails   []storage.Tail
		written []*syncRequest
		alone   []*syncRequest
		later   []*syncRequest
		size    int
	)
	for i, req := range reqs {
		if size >= journalRoundMax {
			later = reqs[i:] // the next round's
			break
		}
		t, ok, err := req.log.UnsyncedTail(journalTailMax)
		switch {
		case err != nil || !ok:
			// A failed or closed log gets its error from its own Sync.
			alone = append(alone, req)
		case t.First == t.Next:
			req.done <- syncResult{synced: t.Next}
		default:
			tails, written = append(tails, t), append(written, req)
			size += journal.RecordBytes(req.key.Name, t.Len())
		}
	}
	s.mu.Lock()
	j, buf := s.journal, s.roundBuf[:0]
	s.roundBuf = nil
	s.mu.Unlock()
	if j == nil { // another round's failure ended the journal
		for i, req := range written {
			_ = req.log.ReadTail(tails[i], nil)
		}
		alone, written = append(alone, written...), nil
	}
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	kept := 0
	for i, req := range written {
		t := tails[i]
		next, start, err := journal.BeginRecord(buf, req.key, t.First, t.Next, t.Len())
		if err == nil {
			next = next[:len(next)+t.Len()]
			err = req.log.ReadTail(t, next[len(next)-t.Len():])
		} else {
			_ = req.log.ReadTail(t, nil)
		}
		if err != nil {
			// Its own sync will say whether the log is sound.
			alone = append(alone, req)
			continue
		}
		buf = journal.EndRecord(next, start)
		tails[kept], written[kept] = t, req
		kept++
	}
	tails, written = tails[:kept], written[:kept]
	var seq uint64
	var err error
	if len(written) > 0 {
		start := s.clock.Now()
		seq, err = j.WriteEncoded(buf)
		journalSyncSeconds.Observe(s.clock.Now().Sub(start).Seconds())
		if err != nil {
			s.logger.Error("node journal failed: partitions sync their own files from now on", "err", err)
			alone = append(alone, written...)
			written = nil
		} else {
			journalRecords.Add(float64(len(written)))
		}
	}
	for i, req := range written {
		req.log.MarkJournaled(tails[i])
		req.done <- syncResult{synced: tails[i].Next}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(buf) <= journalBufferKept && cap(buf) > cap(s.roundBuf) {
		s.roundBuf = buf[:0]
	}
	if err != nil && s.journal == j {
		// Its files stay in the data directory: the next start replays
		// what they hold.
		_ = j.Close()
		s.journal = nil
	}
	for i, req := range written {
		logs := s.held[seq]
		if logs == nil {
			logs = map[*storage.Log]int64{}
			s.held[seq] = logs
		}
		logs[req.log] = tails[i].Next
	}
	for _, req := range alone {
		req.direct = true
		s.push(req)
	}
	for _, req := range later {
		s.push(req)
	}
	s.journaling--
	s.retireLocked()
	s.wake.Broadcast()
}

// retireLocked removes the journal files whose records every partition now
// holds durably in its own files, and forces the syncs that free the
// oldest files when too many wait. The caller holds mu.
func (s *Syncer) retireLocked() {
	if s.journal == nil {
		return
	}
	current := s.journal.Current()
	var waiting []uint64
	for seq, logs := range s.held {
		for log, next := range logs {
			if !log.NeedsJournal(next) {
				delete(logs, log)
			}
		}
		switch {
		case len(logs) == 0 && seq != current:
			if err := s.journal.Remove(seq); err != nil {
				s.logger.Warn("removing a node journal file", "file", seq, "err", err)
				continue
			}
			delete(s.held, seq)
		case seq != current:
			waiting = append(waiting, seq)
		}
	}
	if len(waiting) <= journalHeldFilesMax || s.forced > 0 || s.closed {
		return
	}
	oldest := slices.Min(waiting)
	for log := range s.held[oldest] {
		s.forced++
		s.push(&syncRequest{log: log, done: make(chan syncResult, 1), direct: true, forced: true})
	}
}

// Close runs what is queued, stops the workers and waits for them. The
// partitions using it may stay open: their later syncs run on their own
// flushers.
func (s *Syncer) Close() {
	s.mu.Lock()
	s.closed = true
	s.wake.Broadcast()
	s.mu.Unlock()
	s.workers.Wait()
	s.closeJournal()
}

// closeJournal closes the journal and removes every file whose records
// are all covered: after the partitions closed cleanly, all of them.
func (s *Syncer) closeJournal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal == nil {
		return
	}
	if err := s.journal.Close(); err != nil {
		s.logger.Warn("closing the node journal", "err", err)
	}
	for _, seq := range s.journal.Files() {
		if slices.Contains(s.replayFiles, seq) {
			continue
		}
		logs := s.held[seq]
		for log, next := range logs {
			if !log.NeedsJournal(next) {
				delete(logs, log)
			}
		}
		if len(logs) > 0 {
			continue
		}
		if err := s.journal.Remove(seq); err != nil {
			s.logger.Warn("removing a node journal file", "file", seq, "err", err)
		}
	}
	s.journal = nil
}

// peakRunning is the most syncs that ever ran at once.
func (s *Syncer) peakRunning() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
