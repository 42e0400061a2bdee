// Command plot draws bench/run's PNG figures from the JSON summaries of one
// run: end-to-end latency against throughput, and produce throughput against
// the number of partitions.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type summary struct {
	Partitions         int     `json:"partitions"`
	RecordsPerSecond   float64 `json:"records_per_second"`
	MegabytesPerSecond float64 `json:"megabytes_per_second"`
	Latency            *struct {
		P50Ms float64 `json:"p50_ms"`
		P99Ms float64 `json:"p99_ms"`
	} `json:"latency"`
}

func read(dir, name string) (summary, bool) {
	var s summary
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

func main() {
	dir := flag.String("dir", ".", "directory holding the run's NAME.json summaries")
	latencyOut := flag.String("latency", "latency.png", "output: e2e latency against throughput")
	partitionsOut := flag.String("partitions", "partitions.png", "output: produce throughput against partitions")
	flag.Parse()
	if err := latency(*dir, *latencyOut); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	if err := partitions(*dir, *partitionsOut); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func latency(dir, out string) error {
	var p50, p99 plotter.XYs
	for _, name := range []string{"e2e-10", "e2e-50", "e2e-90"} {
		s, ok := read(dir, name)
		if !ok || s.Latency == nil {
			continue
		}
		p50 = append(p50, plotter.XY{X: s.RecordsPerSecond, Y: s.Latency.P50Ms})
		p99 = append(p99, plotter.XY{X: s.RecordsPerSecond, Y: s.Latency.P99Ms})
	}
	if len(p50) == 0 {
		return fmt.Errorf("no e2e summaries in %s", dir)
	}
	p := plot.New()
	p.Title.Text = "Cairn end-to-end latency, 1 KiB records, acks=all"
	p.X.Label.Text = "records/s"
	p.Y.Label.Text = "ms from due send time to receipt"
	if err := plotutil.AddLinePoints(p, "p50", p50, "p99", p99); err != nil {
		return err
	}
	return p.Save(7*vg.Inch, 4*vg.Inch, out)
}

func partitions(dir, out string) error {
	var pts plotter.XYs
	for _, name := range []string{"produce-1k-all", "produce-1k-all-p16", "produce-1k-all-p1000"} {
		s, ok := read(dir, name)
		if !ok {
			continue
		}
		pts = append(pts, plotter.XY{X: float64(s.Partitions), Y: s.MegabytesPerSecond})
	}
	if len(pts) == 0 {
		return fmt.Errorf("no produce summaries in %s", dir)
	}
	p := plot.New()
	p.Title.Text = "Cairn produce throughput, 1 KiB records, acks=all"
	p.X.Label.Text = "partitions"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Label.Text = "MB/s acknowledged"
	p.Y.Min = 0
	if err := plotutil.AddLinePoints(p, "produce", pts); err != nil {
		return err
	}
	return p.Save(7*vg.Inch, 4*vg.Inch, out)
}
