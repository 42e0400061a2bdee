// Command plot draws bench/run's PNG figures from the JSON summaries of one
// run: end-to-end latency against throughput, and produce throughput against
// the number of partitions.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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

// read returns the summary bench/run wrote as NAME.json; a workload that
// was not run (quick runs skip some) or failed has none, and its point is
// left out rather than failing the figure.
func read(dir, name string) (summary, bool, error) {
	var s summary
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if errors.Is(err, fs.ErrNotExist) || len(b) == 0 {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("decode %s: %w", name, err)
	}
	if _, failed := os.Stat(filepath.Join(dir, name+".failed")); failed == nil {
		return s, false, nil
	}
	return s, true, nil
}

func main() {
	dir := flag.String("dir", ".", "directory holding the run's NAME.json summaries")
	latencyOut := flag.String("latency", "latency.png", "output: e2e latency against throughput")
	partitionsOut := flag.String("partitions", "partitions.png", "output: produce throughput against partitions")
	flag.Parse()
	if err := latency(*dir, *latencyOut); err != nil {
		fmt.Fprintln(os.Stderr, "plot: latency:", err)
		os.Exit(1)
	}
	if err := partitions(*dir, *partitionsOut); err != nil {
		fmt.Fprintln(os.Stderr, "plot: partitions:", err)
		os.Exit(1)
	}
}

func latency(dir, out string) error {
	var p50, p99 plotter.XYs
	for _, name := range []string{"e2e-10", "e2e-50", "e2e-90"} {
		s, ok, err := read(dir, name)
		if err != nil {
			return err
		}
		if !ok || s.Latency == nil || s.Latency.P50Ms <= 0 {
			continue
		}
		p50 = append(p50, plotter.XY{X: s.RecordsPerSecond, Y: s.Latency.P50Ms})
		p99 = append(p99, plotter.XY{X: s.RecordsPerSecond, Y: s.Latency.P99Ms})
	}
	if len(p50) == 0 {
		return fmt.Errorf("no e2e summaries in %s", dir)
	}
	p := plot.New()
	p.Title.Text = "Cairn end-to-end latency, 1 KiB records, acks=all, 1 partition"
	p.X.Label.Text = "records/s delivered (paced at 10%, 50%, 90% of the measured maximum)"
	p.X.Min = 0
	// p50 at light load and p99 near saturation differ by three orders of
	// magnitude; on a linear axis the light-load points would sit on zero.
	p.Y.Label.Text = "ms from due send time to receipt"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = 5 * vg.Millimeter
	p.Legend.YOffs = -3 * vg.Millimeter
	if err := plotutil.AddLinePoints(p, "p50", p50, "p99", p99); err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	if err := p.Save(7*vg.Inch, 4*vg.Inch, out); err != nil {
		return fmt.Errorf("save %s: %w", out, err)
	}
	return nil
}

// series is one line of the partitions figure: a record size and acks
// setting over 1, 16, 100 and 1,000 partitions (those measured).
type series struct {
	label string
	name  string // produce-<size>-<acks>; -p<partitions> is appended
}

func partitions(dir, out string) error {
	kib, err := partitionPlot(dir, "1 KiB records", "MB/s acknowledged",
		func(s summary) float64 { return s.MegabytesPerSecond },
		[]series{{"acks=all", "produce-1k-all"}, {"acks=1", "produce-1k-ack1"}})
	if err != nil {
		return err
	}
	small, err := partitionPlot(dir, "100 B records", "thousand records/s acknowledged",
		func(s summary) float64 { return s.RecordsPerSecond / 1e3 },
		[]series{{"acks=all", "produce-100b-all"}, {"acks=1", "produce-100b-ack1"}})
	if err != nil {
		return err
	}
	// Two panels rather than one: the record sizes differ tenfold in both
	// MB/s and records/s, so on one axis either pair of lines would be flat.
	plots := [][]*plot.Plot{{kib, small}}
	img := vgimg.New(10*vg.Inch, 4*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for i, p := range plots[0] {
		if p != nil {
			p.Draw(canvases[0][i])
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", out, err)
	}
	return nil
}

func partitionPlot(dir, title, unit string, value func(summary) float64, lines []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Cairn produce, " + title
	p.X.Label.Text = "partitions"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	// Fixed, so a panel with one point (a quick run) still has a positive
	// range for the log scale, and both panels line up.
	p.X.Min, p.X.Max = 0.7, 1500
	p.Y.Label.Text = unit
	p.Y.Min = 0
	p.Legend.Top = true
	var args []any
	for _, l := range lines {
		var pts plotter.XYs
		for _, n := range []int{1, 16, 100, 1000} {
			s, ok, err := read(dir, fmt.Sprintf("%s-p%d", l.name, n))
			if err != nil {
				return nil, err
			}
			if ok {
				pts = append(pts, plotter.XY{X: float64(n), Y: value(s)})
			}
		}
		if len(pts) > 0 {
			args = append(args, l.label, pts)
		}
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("no produce summaries for %s in %s", title, dir)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, fmt.Errorf("draw %s: %w", title, err)
	}
	return p, nil
}
