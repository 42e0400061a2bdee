package storage

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

var (
	crashSeeds = flag.Int("seeds", 1000, "number of seeds TestCrashRecovery runs")
	crashSeed  = flag.Int64("seed", -1, "run TestCrashRecovery for this seed only")
)

// TestCrashRecovery runs random workloads of appends, syncs, checkpoints,
// rolls, retention, compaction and suffix truncation on a crash-simulating
// filesystem, cuts the
// power at a random filesystem call (torn writes included), reopens, and
// checks that:
//   - every batch a Sync or Checkpoint covered is there, byte for byte;
//   - the log is exactly the longest chain of whole batches the disk kept:
//     nothing after a torn tail is kept, nothing before it is lost;
//   - offsets are contiguous across segments and the start offset is the
//     last one persisted (or the one being persisted at the crash);
//   - FindTimestamp agrees with a scan of the recovered batches.
//
// Reproduce one seed with: go test ./storage -run TestCrashRecovery -seed=N
// Run more with -seeds=N.
func TestCrashRecovery(t *testing.T) {
	first, count := uint64(0), uint64(*crashSeeds)
	if *crashSeed >= 0 {
		first, count = uint64(*crashSeed), 1
	}
	for seed := first; seed < first+count; seed++ {
		if err := runCrashSeed(seed); err != nil {
			t.Fatalf("seed %d: %v\nreproduce: go test ./storage -run TestCrashRecovery -seed=%d", seed, err, seed)
		}
	}
}

// modelBatch is one batch the workload appended and has not seen removed.
type modelBatch struct {
	base, next int64
	whole      []byte
}

// crashWorld is what the workload knows: the batches the log should hold,
// what is acknowledged, and the outcomes an operation cut by the crash may
// have had.
type crashWorld struct {
	rng         *rand.Rand
	cfg         Config
	nowMs       int64
	batches     []modelBatch
	start       int64
	acked       int64
	altBatches  []modelBatch   // set while a compaction is in flight
	altCuts     [][]modelBatch // set while a suffix truncation is in flight
	altStart    int64          // set while a start offset change is in flight
	hasAltStart bool
}

const crashRounds = 4

func runCrashSeed(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := &crashWorld{
		rng: rng,
		cfg: Config{
			SegmentBytes:       1024 + rng.Int64N(3072),
			SegmentMs:          5000 + rng.Int64N(20000),
			IndexIntervalBytes: []int64{0, 128, 700}[rng.IntN(3)],
		},
		nowMs: 1_000_000,
	}
	fsys := vfs.NewCrashFS()
	for round := range crashRounds {
		budget := 1 + rng.IntN(400)
		cfs := vfs.NewPowerCutFS(fsys, budget,
			vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, uint64(round))), TearUnsynced: rng.IntN(4) != 0})
		present := presentBatches(fsys)
		l, err := Open(cfs, "p", w.cfg, w.nowMs)
		if err != nil {
			if cfs.Cut() {
				fsys = cfs.Crash() // the power went during recovery; try again
				continue
			}
			return fmt.Errorf("round %d: open: %w", round, err)
		}
		if err := w.verify(l, present); err != nil {
			return fmt.Errorf("round %d (budget %d): %w", round, budget, err)
		}
		if err := w.run(l, cfs); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		fsys = cfs.Crash()
	}
	return nil
}

// run applies random operations until the power goes or the round ends.
func (w *crashWorld) run(l *Log, cfs *vfs.PowerCutFS) error {
	for range 80 {
		var err error
		switch r := w.rng.IntN(100); {
		case r < 55:
			err = w.appendBatches(l)
		case r < 70:
			var synced int64
			if synced, err = l.Sync(); err == nil {
				w.acked = max(w.acked, synced)
			}
		case r < 75:
			next := l.NextOffset()
			if err = l.Checkpoint(); err == nil {
				w.acked = max(w.acked, next)
			}
		case r < 82:
			w.nowMs += w.rng.Int64N(w.cfg.SegmentMs)
		case r < 86:
			err = w.deleteOldest(l)
		case r < 90:
			err = w.advanceStart(l)
		case r < 94:
			err = w.compact(l)
		case r < 97:
			err = w.truncate(l)
		default:
			if err = l.Close(); err == nil {
				w.acked = l.nextOffset
				return nil
			}
		}
		if cfs.Cut() {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *crashWorld) appendBatches(l *Log) error {
	var input []byte
	next := l.NextOffset()
	for range 1 + w.rng.IntN(3) {
		records := 1 + w.rng.IntN(4)
		b := makeBatch(next, records, w.rng.IntN(150), w.nowMs+w.rng.Int64N(6000)-3000)
		// Recorded before the call: a crash may keep any prefix of it.
		w.batches = append(w.batches, modelBatch{base: next, next: next + int64(records), whole: b})
		input, next = append(input, b...), next+int64(records)
	}
	return l.Append(input, w.nowMs)
}

func (w *crashWorld) deleteOldest(l *Log) error {
	segments := l.Segments()
	newStart := l.NextOffset()
	if len(segments) > 1 {
		newStart = max(l.StartOffset(), segments[1].BaseOffset)
	}
	if len(segments) == 1 && segments[0].SizeBytes == 0 {
		if err := l.DeleteOldestSegment(w.nowMs); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete the empty active segment: %v", err)
		}
		return nil
	}
	w.altStart, w.hasAltStart = newStart, true
	if err := l.DeleteOldestSegment(w.nowMs); err != nil {
		return err
	}
	w.start, w.hasAltStart = newStart, false
	w.acked = max(w.acked, newStart) // retention checkpoints
	return nil
}

func (w *crashWorld) advanceStart(l *Log) error {
	start, next := l.StartOffset(), l.NextOffset()
	target := start + w.rng.Int64N(next-start+1)
	w.altStart, w.hasAltStart = target, true
	if err := l.AdvanceStartOffset(target); err != nil {
		return err
	}
	w.start, w.hasAltStart = target, false
	if target > start {
		w.acked = max(w.acked, next)
	}
	return nil
}

// compact drops a random part of a random sealed segment's batches.
func (w *crashWorld) compact(l *Log) error {
	segments := l.Segments()
	if len(segments) < 2 {
		return nil
	}
	segment := segments[w.rng.IntN(len(segments)-1)]
	content, err := l.ReadSegment(segment.BaseOffset)
	if err != nil {
		return err
	}
	dropped := map[int64]bool{}
	var kept []byte
	for rest := content; len(rest) > 0; {
		h, whole, remaining, err := batch.Next(rest)
		if err != nil {
			return fmt.Errorf("sealed segment %d: %w", segment.BaseOffset, err)
		}
		if w.rng.IntN(5) < 2 {
			dropped[h.BaseOffset] = true
		} else {
			kept = append(kept, whole...)
		}
		rest = remaining
	}
	var after []modelBatch
	for _, b := range w.batches {
		if !dropped[b.base] {
			after = append(after, b)
		}
	}
	w.altBatches = after
	if err := l.ReplaceSegment(segment.BaseOffset, kept); err != nil {
		return err
	}
	w.batches, w.altBatches = after, nil
	return nil
}

// truncate cuts the log at a random batch boundary at or above the start.
// A crash meanwhile leaves the old log, the prefix, or (recovery taking a
// compaction gap for a torn tail) the old log up to the first gap after the
// cut.
func (w *crashWorld) truncate(l *Log) error {
	start := l.StartOffset()
	var boundaries []int
	for i, b := range w.batches {
		if b.base >= start {
			boundaries = append(boundaries, i)
		}
	}
	if len(boundaries) == 0 {
		return nil
	}
	i := boundaries[w.rng.IntN(len(boundaries))]
	offset, prefix := w.batches[i].base, w.batches[:i:i]
	w.altCuts = [][]modelBatch{prefix, untilGap(w.batches, i)}
	w.acked = min(w.acked, offset) // what follows is given up
	if err := l.TruncateSuffix(offset); err != nil {
		return err
	}
	w.batches, w.altCuts = prefix, nil
	return nil
}

// untilGap returns batches up to the first offset gap after index i.
func untilGap(batches []modelBatch, i int) []modelBatch {
	for j := i + 1; j < len(batches); j++ {
		if batches[j].base != batches[j-1].next {
			return batches[:j:j]
		}
	}
	return batches
}

// presentBatches returns the whole, valid batches at the start of every
// .log file, as recovery would find them, by base offset.
func presentBatches(fsys vfs.FS) map[int64][]byte {
	present := map[int64][]byte{}
	names, _ := fsys.List("p")
	for _, name := range names {
		if _, suffix, ok := parseSegmentFileName(name); !ok || suffix != logSuffix {
			continue
		}
		data, err := vfs.ReadFile(fsys, "p/"+name)
		if err != nil {
			continue
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				break
			}
			present[h.BaseOffset], data = whole, rest
		}
	}
	return present
}

// expected is the part of batches a recovery must return: from the batch
// holding start, the longest run the disk holds whole.
func expected(batches []modelBatch, start int64, present map[int64][]byte) [][]byte {
	var out [][]byte
	for _, b := range batches {
		if b.next <= start {
			continue
		}
		if !bytes.Equal(present[b.base], b.whole) {
			break
		}
		out = append(out, b.whole)
	}
	return out
}

// verify checks a freshly recovered log against the world, then adopts it.
func (w *crashWorld) verify(l *Log, present map[int64][]byte) error {
	start, next := l.StartOffset(), l.NextOffset()
	if start != w.start && !(w.hasAltStart && start == w.altStart) {
		return fmt.Errorf("start offset %d, want %d (or %d in flight: %v)", start, w.start, w.altStart, w.hasAltStart)
	}
	if next < w.acked {
		return fmt.Errorf("log ends at %d but %d was acknowledged as synced", next, w.acked)
	}
	if err := checkSegments(l); err != nil {
		return err
	}
	got, err := readRecovered(l, start)
	if err != nil {
		return err
	}
	candidates := [][]modelBatch{w.batches}
	if w.altBatches != nil {
		candidates = append(candidates, w.altBatches)
	}
	candidates = append(candidates, w.altCuts...)
	matched := -1
	for i, candidate := range candidates {
		if equalBatches(got, expected(candidate, start, present)) {
			matched = i
		}
	}
	if matched < 0 {
		return fmt.Errorf("recovered %d batches [%d, %d), want %d batches the disk held",
			len(got), start, next, len(expected(w.batches, start, present)))
	}
	if err := checkFindTimestamp(l, got, w.rng); err != nil {
		return err
	}
	var kept []modelBatch
	for _, b := range candidates[matched] {
		if b.base < next {
			kept = append(kept, b)
		}
	}
	w.batches, w.altBatches, w.altCuts, w.start, w.hasAltStart, w.acked = kept, nil, nil, start, false, next
	return nil
}

func checkSegments(l *Log) error {
	segments := l.Segments()
	if segments[0].BaseOffset > l.StartOffset() || segments[0].NextOffset < l.StartOffset() {
		return fmt.Errorf("first segment %+v does not hold start offset %d", segments[0], l.StartOffset())
	}
	for i := 1; i < len(segments); i++ {
		if segments[i].BaseOffset != segments[i-1].NextOffset {
			return fmt.Errorf("segment %d starts at %d, previous ends at %d", i, segments[i].BaseOffset, segments[i-1].NextOffset)
		}
	}
	if last := segments[len(segments)-1]; !last.Active || last.NextOffset != l.NextOffset() {
		return fmt.Errorf("last segment %+v, log end %d", last, l.NextOffset())
	}
	return nil
}

func readRecovered(l *Log, start int64) ([][]byte, error) {
	var out [][]byte
	for offset := start; offset < l.NextOffset(); {
		data, err := l.Read(offset, 1<<20, l.NextOffset())
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", offset, err)
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return nil, fmt.Errorf("read %d returned a bad batch: %w", offset, err)
			}
			out, data, offset = append(out, whole), rest, h.NextOffset()
		}
	}
	return out, nil
}

func checkFindTimestamp(l *Log, batches [][]byte, rng *rand.Rand) error {
	for range 5 {
		ts := 1_000_000 + rng.Int64N(400_000) - 5000
		var want []byte
		for _, b := range batches {
			if h, _ := batch.ParseHeader(b); h.MaxTimestamp >= ts {
				want = b
				break
			}
		}
		got, err := l.FindTimestamp(ts)
		if want == nil && errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("FindTimestamp(%d) = batch at %d (%v), want batch at %d", ts, baseOf(got), err, baseOf(want))
		}
	}
	return nil
}
