package partition

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cairnlog/cairn/env"
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
// Close stops the workers once the queue is empty; a sync asked for after
// Close runs on the caller's goroutine.
type Syncer struct {
	clock   env.Clock // times each sync (timedSync)
	workers sync.WaitGroup

	mu      sync.Mutex
	queue   []*syncRequest // FIFO; one entry per waiting flusher at most
	wake    *sync.Cond     // signalled when queue grows or closed is set
	closed  bool
	running int // syncs running now, for tests
	peak    int // most syncs ever running at once, for tests
}

// syncRequest is one flusher's wait for a sync of its log.
type syncRequest struct {
	log  *storage.Log
	done chan syncResult // buffered 1: a worker never waits on it
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
	s := &Syncer{clock: clock}
	s.wake = sync.NewCond(&s.mu)
	s.workers.Add(workers)
	for range workers {
		go s.work()
	}
	return s, nil
}

// errSyncerClosed is a request refused by a closed Syncer; never returned
// to a partition, whose flusher then syncs itself.
var errSyncerClosed = errors.New("syncer closed")

// sync makes log durable up to its end when the call began, through the
// workers, and returns the synced end as storage.Log.Sync does.
func (s *Syncer) sync(log *storage.Log, done chan syncResult) (int64, error) {
	req := &syncRequest{log: log, done: done}
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
	s.queue = append(s.queue, req)
	s.wake.Signal()
	return nil
}

// work runs queued syncs until the Syncer is closed and the queue empty,
// so no flusher that queued is left waiting.
func (s *Syncer) work() {
	defer s.workers.Done()
	for {
		req, ok := s.next()
		if !ok {
			return
		}
		synced, err := s.timedSync(req.log)
		s.mu.Lock()
		s.running--
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

// next takes the oldest request, waiting for one; false once closed and
// empty.
func (s *Syncer) next() (*syncRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 {
		if s.closed {
			return nil, false
		}
		s.wake.Wait()
	}
	req := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go after a burst
	}
	s.running++
	s.peak = max(s.peak, s.running)
	return req, true
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
}

// peakRunning is the most syncs that ever ran at once.
func (s *Syncer) peakRunning() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
