package partition

// The CPU a produce's validation costs on the writer's path, before the
// writer lock: a 1 MiB batch of 1 KiB records and one of 100-byte records,
// on a plain topic (records checked, none kept) and a stream topic (records
// kept for the stream index). bench/results/2026-12-06-writepath.md has the
// figures before and after records stopped being kept for plain topics.
//
//	go test -run '^$' -bench ValidateBatches -benchmem ./partition/

import (
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

func BenchmarkValidateBatches(b *testing.B) {
	for _, valueBytes := range []int{1000, 80} {
		count := (1 << 20) / (valueBytes + 20)
		records := make([]batch.Record, count)
		value := make([]byte, valueBytes)
		for i := range records {
			records[i] = batch.Record{Key: []byte(fmt.Sprintf("k%06d", i)), Value: value}
		}
		data := batch.Build(records, batch.None)
		for _, streams := range []bool{false, true} {
			cfg := DefaultConfig()
			cfg.Streams = streams
			b.Run(fmt.Sprintf("value=%dB/streams=%t", valueBytes, streams), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := validateBatches(data, cfg, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
