// Command fsyncref measures what the disk under a directory can do with the
// write pattern of a durable log: append, then fdatasync, and wait for it.
// Its figures are the reference that Cairn's produce figures are divided by
// in bench/run, so a result says how close the broker comes to its disk
// rather than how fast one shared machine happened to be.
//
//	go run ./bench/fsyncref --dir D [--rounds 5] [--round-time 3s] [--json]
//
// Four measurements, each from --rounds rounds of at most --round-time:
//
//   - 1 MiB appends, each followed by fdatasync: bandwidth in MB/s (10^6
//     bytes) of the best round, each round in a new file removed after it;
//   - 1 MiB appends, each followed by fdatasync, into a log that keeps
//     growing: every round's file is kept until the measurement ends, so
//     each append lands on new page-cache pages as a log's do, and the
//     figure is the best round's. This is the honest reference for acks=all
//     produce on one partition: one writer, write then sync, no group
//     commit, on a log kept as a broker keeps it;
//   - 1 MiB appends without fdatasync into a log that keeps growing: every
//     round's file is kept until the measurement ends, as a log keeps its
//     data, and the figure is the mean of the rounds after the first. It is
//     what one writer gets copying into new page-cache pages, which bounds
//     one partition (one file, one writer) whatever the disk can do. On a
//     virtual machine it can be a tenth of what rewriting recycled pages
//     gives, which is why the files are kept;
//   - 4 KiB appends, each followed by fdatasync: syncs per second and the
//     latency of one append plus its sync (p50, p99, max), the ceiling for
//     small acks=all batches and the floor of their latency.
//
// Each round writes a new temporary file in D, which is removed afterwards
// (also on Ctrl-C). A round also stops after writing roundBytesMax bytes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cairnlog/cairn/internal/loadgen"
)

const (
	largeAppendBytes = 1 << 20
	smallAppendBytes = 4 << 10
	// roundBytesMax bounds the disk space one round may take.
	roundBytesMax = 2 << 30
	roundsMax     = 100
	roundTimeMax  = time.Minute
)

// errUsage reports bad flags; the flag package has already said why.
var errUsage = errors.New("usage")

// appendRound is what one round of appends measured.
type appendRound struct {
	bytes   int64
	appends int64
	elapsed time.Duration
	latency loadgen.LatencySummary
}

func (r appendRound) megabytesPerSecond() float64 {
	return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
}

func (r appendRound) appendsPerSecond() float64 {
	return float64(r.appends) / r.elapsed.Seconds()
}

// report is the program's output; the flat field names let a shell script
// pick a figure out of the JSON line with sed.
type report struct {
	Dir                     string  `json:"dir"`
	Rounds                  int     `json:"rounds"`
	RoundSeconds            float64 `json:"round_seconds"`
	LargeMegabytesPerSec    float64 `json:"append_1mib_fdatasync_megabytes_per_second"`
	GrowingMegabytesPerSec  float64 `json:"append_1mib_fdatasync_growing_megabytes_per_second"`
	BufferedMegabytesPerSec float64 `json:"append_1mib_nosync_growing_megabytes_per_second"`
	SmallAppendsPerSecond   float64 `json:"append_4kib_fdatasync_per_second"`
	SmallMegabytesPerSec    float64 `json:"append_4kib_fdatasync_megabytes_per_second"`
	SmallP50Ms              float64 `json:"append_4kib_fdatasync_p50_ms"`
	SmallP99Ms              float64 `json:"append_4kib_fdatasync_p99_ms"`
	SmallMaxMs              float64 `json:"append_4kib_fdatasync_max_ms"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "fsyncref:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("fsyncref", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", "", "directory on the disk to measure (required)")
	rounds := flags.Int("rounds", 5, "rounds per measurement; the best one is reported")
	roundTime := flags.Duration("round-time", 3*time.Second, "longest one round runs")
	asJSON := flags.Bool("json", false, "print one JSON object instead of text")
	if err := flags.Parse(args); err != nil {
		return errUsage
	}
	switch {
	case *dir == "":
		return errors.New("--dir is required")
	case *rounds < 1 || *rounds > roundsMax:
		return fmt.Errorf("--rounds %d: want 1 to %d", *rounds, roundsMax)
	case *roundTime <= 0 || *roundTime > roundTimeMax:
		return fmt.Errorf("--round-time %s: want more than 0 and at most %s", *roundTime, roundTimeMax)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	large, err := bestRound(ctx, *dir, largeAppendBytes, true, *rounds, *roundTime)
	if err != nil {
		return fmt.Errorf("1 MiB appends: %w", err)
	}
	growing, err := growingBest(ctx, *dir, largeAppendBytes, *rounds, *roundTime)
	if err != nil {
		return fmt.Errorf("1 MiB appends to a growing log: %w", err)
	}
	buffered, err := growingRounds(ctx, *dir, largeAppendBytes, *rounds, *roundTime)
	if err != nil {
		return fmt.Errorf("1 MiB appends without fdatasync: %w", err)
	}
	small, err := bestRound(ctx, *dir, smallAppendBytes, true, *rounds, *roundTime)
	if err != nil {
		return fmt.Errorf("4 KiB appends: %w", err)
	}
	result := report{
		Dir: *dir, Rounds: *rounds, RoundSeconds: roundTime.Seconds(),
		LargeMegabytesPerSec:    large.megabytesPerSecond(),
		GrowingMegabytesPerSec:  growing.megabytesPerSecond(),
		BufferedMegabytesPerSec: buffered.megabytesPerSecond(),
		SmallAppendsPerSecond:   small.appendsPerSecond(),
		SmallMegabytesPerSec:    small.megabytesPerSecond(),
		SmallP50Ms:              small.latency.P50Ms,
		SmallP99Ms:              small.latency.P99Ms,
		SmallMaxMs:              small.latency.MaxMs,
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(result)
	}
	_, err = fmt.Fprintf(stdout, `fsyncref: %s, best of %d rounds of up to %s
1 MiB append + fdatasync  %.1f MB/s
1 MiB append + fdatasync, growing log  %.1f MB/s
1 MiB append, no sync, growing log  %.1f MB/s
4 KiB append + fdatasync  %.0f appends/s (%.2f MB/s), latency p50 %.3f ms, p99 %.3f ms, max %.3f ms
`, result.Dir, result.Rounds, roundTime, result.LargeMegabytesPerSec, result.GrowingMegabytesPerSec,
		result.BufferedMegabytesPerSec, result.SmallAppendsPerSecond,
		result.SmallMegabytesPerSec, result.SmallP50Ms, result.SmallP99Ms, result.SmallMaxMs)
	return err
}

// growingRounds runs rounds rounds of appends of blockBytes without sync,
// keeping every round's file until the last round ends, and returns the
// rounds after the first taken together.
func growingRounds(ctx context.Context, dir string, blockBytes, rounds int, roundTime time.Duration) (result appendRound, err error) {
	block := randomBlock(blockBytes)
	var kept []string
	defer func() {
		for _, name := range kept {
			if removeErr := os.Remove(name); err == nil {
				err = removeErr
			}
		}
	}()
	for i := range rounds {
		round, err := appendRoundIn(ctx, dir, block, false, roundTime, func(name string) { kept = append(kept, name) })
		if err != nil {
			return appendRound{}, err
		}
		if i == 0 && rounds > 1 {
			continue // it may still land on pages freed moments ago
		}
		result.bytes += round.bytes
		result.appends += round.appends
		result.elapsed += round.elapsed
	}
	return result, nil
}

// growingBest runs rounds rounds of appends of blockBytes, each followed by
// fdatasync, keeping every round's file until the last round ends, and
// returns the round with the highest bandwidth.
func growingBest(ctx context.Context, dir string, blockBytes, rounds int, roundTime time.Duration) (best appendRound, err error) {
	block := randomBlock(blockBytes)
	var kept []string
	defer func() {
		for _, name := range kept {
			if removeErr := os.Remove(name); err == nil {
				err = removeErr
			}
		}
	}()
	for range rounds {
		round, err := appendRoundIn(ctx, dir, block, true, roundTime, func(name string) { kept = append(kept, name) })
		if err != nil {
			return appendRound{}, err
		}
		if best.appends == 0 || round.megabytesPerSecond() > best.megabytesPerSecond() {
			best = round
		}
	}
	return best, nil
}

// randomBlock returns blockBytes of random bytes, so a disk or filesystem
// that compresses cannot shortcut the writes.
func randomBlock(blockBytes int) []byte {
	block := make([]byte, blockBytes)
	random := rand.New(rand.NewPCG(7, 8))
	for i := range block {
		block[i] = byte(random.Uint32())
	}
	return block
}

// bestRound runs rounds rounds of appends of blockBytes, each followed by
// fdatasync when sync is set, and returns the one with the highest
// bandwidth.
func bestRound(ctx context.Context, dir string, blockBytes int, sync bool, rounds int, roundTime time.Duration) (appendRound, error) {
	block := randomBlock(blockBytes)
	var best appendRound
	for range rounds {
		round, err := appendRoundIn(ctx, dir, block, sync, roundTime, nil)
		if err != nil {
			return appendRound{}, err
		}
		if best.appends == 0 || round.megabytesPerSecond() > best.megabytesPerSecond() {
			best = round
		}
	}
	return best, nil
}

// appendRoundIn appends block to a new temporary file in dir, syncing after
// each append when sync is set, until roundTime passes or roundBytesMax
// bytes are written. It removes the file, unless keep is set: then keep
// gets its name and removing it is the caller's.
func appendRoundIn(ctx context.Context, dir string, block []byte, sync bool, roundTime time.Duration, keep func(name string)) (round appendRound, err error) {
	file, err := os.CreateTemp(dir, "fsyncref-*.tmp")
	if err != nil {
		return appendRound{}, fmt.Errorf("create file in %s: %w", dir, err)
	}
	if keep != nil {
		keep(file.Name())
	}
	defer func() {
		closeErr := file.Close()
		var removeErr error
		if keep == nil {
			removeErr = os.Remove(file.Name())
		}
		if err == nil {
			err = errors.Join(closeErr, removeErr)
		}
	}()
	latency := loadgen.NewLatencyRecorder(0)
	start := time.Now()
	for round.bytes+int64(len(block)) <= roundBytesMax {
		if err := ctx.Err(); err != nil {
			return appendRound{}, err
		}
		began := time.Now()
		if _, err := file.Write(block); err != nil {
			return appendRound{}, fmt.Errorf("append to %s: %w", file.Name(), err)
		}
		if sync {
			if err := fdatasync(file); err != nil {
				return appendRound{}, fmt.Errorf("fdatasync %s: %w", file.Name(), err)
			}
		}
		now := time.Now()
		latency.Record(now.Sub(began))
		round.bytes += int64(len(block))
		round.appends++
		if now.Sub(start) >= roundTime {
			break
		}
	}
	round.elapsed = time.Since(start)
	round.latency = latency.Summary()
	return round, nil
}
