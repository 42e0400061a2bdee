package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestFsyncrefMeasuresAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--dir", dir, "--rounds", "2", "--round-time", "100ms", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	var got report
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	if got.LargeMegabytesPerSec <= 0 || got.GrowingMegabytesPerSec <= 0 || got.BufferedMegabytesPerSec <= 0 || got.SmallAppendsPerSecond <= 0 || got.SmallP50Ms <= 0 ||
		got.SmallP50Ms > got.SmallP99Ms || got.SmallP99Ms > got.SmallMaxMs {
		t.Errorf("figures %+v: want positive rates and 0 < p50 <= p99 <= max", got)
	}
	// 4 KiB per append: the two small-append figures must agree.
	if want := got.SmallAppendsPerSecond * 4096 / 1e6; got.SmallMegabytesPerSec < want*0.999 || got.SmallMegabytesPerSec > want*1.001 {
		t.Errorf("4 KiB bandwidth %.3f MB/s, want appends/s × 4096 B = %.3f", got.SmallMegabytesPerSec, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("left behind %v (%v)", entries, err)
	}
}

func TestFsyncrefRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--dir", t.TempDir(), "--rounds", "0"},
		{"--dir", t.TempDir(), "--round-time", "2h"},
		{"--dir", "/nonexistent/fsyncref"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(args, &stdout, &stderr); err == nil {
			t.Errorf("%s: no error", strings.Join(args, " "))
		}
	}
}
