package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression bombs: small inputs that expand to 1 GiB of zeros. Each is
// made by repeating a compressed piece, which the format allows (gzip
// members, lz4 and zstd frames, xerial chunks), so building them is cheap.

const bombBytes = 1 << 30

func repeatPiece(piece []byte, times int) []byte { return bytes.Repeat(piece, times) }

func gzipBomb(t *testing.T) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := w.Write(make([]byte, 16<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return repeatPiece(buf.Bytes(), bombBytes/(16<<20))
}

func lz4Bomb(t *testing.T) []byte {
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if err := w.Apply(lz4.BlockSizeOption(lz4.Block4Mb)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 16<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return repeatPiece(buf.Bytes(), bombBytes/(16<<20))
}

func zstdBomb(t *testing.T) []byte {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	return repeatPiece(e.EncodeAll(make([]byte, 16<<20), nil), bombBytes/(16<<20))
}

// zstdStreamBomb has no content size in its frame header, as the Java
// client's streaming encoder writes, so the decoder cannot reject it
// from the header.
func zstdStreamBomb(t *testing.T) []byte {
	var buf bytes.Buffer
	e, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<23))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 16 {
		if _, err := e.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return repeatPiece(buf.Bytes(), bombBytes/(16<<20))
}

func xerialBomb(t *testing.T) []byte {
	chunk := snappy.Encode(nil, make([]byte, 1<<20))
	piece := binary.BigEndian.AppendUint32(nil, uint32(len(chunk)))
	piece = append(piece, chunk...)
	header := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
	return append(header, repeatPiece(piece, bombBytes/(1<<20))...)
}

// rawSnappyBomb is a raw block whose header declares 1 GiB; a raw block
// cannot really hold that much in a small input (snappy expands at most
// about 21 to 1), so it is the claim that must be refused.
func rawSnappyBomb(t *testing.T) []byte {
	return append(binary.AppendUvarint(nil, bombBytes), snappy.Encode(nil, make([]byte, 1<<20))[3:]...)
}

// TestDecompressionBombs proves each codec stops at the cap with
// ErrTooLarge, allocating little more than the cap, where decompressing
// the whole bomb would allocate 1 GiB.
func TestDecompressionBombs(t *testing.T) {
	const capBytes = 1 << 20
	bombs := []struct {
		name  string
		codec Codec
		build func(*testing.T) []byte
		// fixedBytes is the codec's own buffers, independent of the cap:
		// lz4 holds a block of the frame's block size (4 MiB here) for
		// input and one for output; zstd holds the frame's window
		// (8 MiB in both bombs, the most accepted under a small cap) and
		// two blocks.
		fixedBytes uint64
	}{
		{"gzip", Gzip, gzipBomb, 1 << 20},
		{"lz4", LZ4, lz4Bomb, 9 << 20},
		{"zstd", Zstd, zstdBomb, 9 << 20},
		{"zstd stream", Zstd, zstdStreamBomb, 9 << 20},
		{"snappy xerial", Snappy, xerialBomb, 1 << 20},
		{"snappy raw", Snappy, rawSnappyBomb, 1 << 20},
	}
	for _, bomb := range bombs {
		t.Run(bomb.name, func(t *testing.T) {
			src := bomb.build(t)
			t.Logf("%d compressed bytes", len(src))
			// Warm the codec pools so only this call's allocations count.
			if _, err := Decompress(bomb.codec, src, capBytes); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err=%v, want ErrTooLarge", err)
			}
			var err error
			start := time.Now()
			allocated := allocatedBytes(func() { _, err = Decompress(bomb.codec, src, capBytes) })
			elapsed := time.Since(start)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err=%v, want ErrTooLarge", err)
			}
			if limit := 2*capBytes + bomb.fixedBytes; allocated > limit {
				t.Errorf("allocated %d bytes, want at most %d", allocated, limit)
			}
			// Decompressing 1 GiB takes seconds; stopping at 1 MiB takes
			// milliseconds. The bound leaves room for a loaded machine.
			if elapsed > 2*time.Second {
				t.Errorf("took %v to refuse", elapsed)
			}
			t.Logf("refused after allocating %d bytes in %v", allocated, elapsed)

			// Through Validate too, as a produced batch.
			whole := rawBatch(Header{NumRecords: 1, Attributes: int16(bomb.codec)}, src)
			if _, _, err := Validate(whole, Limits{DecompressedBytesMax: capBytes}); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Validate: err=%v, want ErrTooLarge", err)
			}
		})
	}
}

// TestDeclaredSizeAboveCapRefusedUpFront proves a section whose gzip
// trailer, lz4 frame descriptor or zstd frame header declares more than
// the cap is refused before decoding: it allocates no output, where one
// that does not declare its size costs up to twice the cap. Without that,
// each such bomb a broker refused left a cap-sized buffer for the
// collector, and a few in a row raised the process's peak memory by
// several caps.
func TestDeclaredSizeAboveCapRefusedUpFront(t *testing.T) {
	const capBytes = 8 << 20
	zeros := make([]byte, capBytes+1)
	lz4Sized := func(t *testing.T) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(lz4.SizeOption(uint64(len(zeros)))); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name  string
		codec Codec
		build func(*testing.T) []byte
	}{
		{"gzip", Gzip, func(t *testing.T) []byte {
			out, err := Compress(Gzip, zeros)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}},
		{"lz4 with content size", LZ4, lz4Sized},
		{"zstd with content size", Zstd, func(t *testing.T) []byte {
			out, err := Compress(Zstd, zeros)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.build(t)
			// Either side of the cap: exactly the declared size decodes.
			if got, err := Decompress(tc.codec, src, len(zeros)); err != nil || len(got) != len(zeros) {
				t.Fatalf("at the declared size: %d bytes, err=%v", len(got), err)
			}
			var err error
			allocated := allocatedBytes(func() { _, err = Decompress(tc.codec, src, capBytes) })
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err=%v, want ErrTooLarge", err)
			}
			if allocated > capBytes/8 {
				t.Errorf("allocated %d bytes to refuse a declared %d, want at most %d", allocated, len(zeros), capBytes/8)
			}
		})
	}
}

// TestRefusalLeavesNoHeapGoal proves a refused bomb does not leave the
// collector's heap goal at twice its buffers: the next batches would be
// allowed that much garbage before a collection, so each bomb in a row
// raised the process's memory further. (Collections are spaced a second
// apart at least, so that a stream of bombs does not keep the collector
// busy.)
func TestRefusalLeavesNoHeapGoal(t *testing.T) {
	const capBytes = 64 << 20
	src := lz4Bomb(t) // no content size: the decode runs up to the cap
	sample := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	for range 3 {
		lastRefusedCollect.Store(0) // each as if a second after the last
		if _, err := Decompress(LZ4, src, capBytes); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err=%v, want ErrTooLarge", err)
		}
		metrics.Read(sample)
		if goal := sample[0].Value.Uint64(); goal > capBytes {
			t.Fatalf("heap goal %d MiB after a refusal at a cap of %d MiB", goal>>20, capBytes>>20)
		}
	}
}

// TestDecompressWithinCap proves output exactly at the cap is accepted and
// one byte over is refused, for every codec.
func TestDecompressWithinCap(t *testing.T) {
	section := bytes.Repeat([]byte("abcdefgh"), 8<<10) // 64 KiB
	for _, codec := range allCodecs {
		compressed, err := Compress(codec, section)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decompress(codec, compressed, len(section))
		if err != nil || !bytes.Equal(got, section) {
			t.Errorf("%v at the cap: %d bytes, err=%v", codec, len(got), err)
		}
		if _, err := Decompress(codec, compressed, len(section)-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v one byte over the cap: err=%v, want ErrTooLarge", codec, err)
		}
	}
	if _, err := Decompress(6, nil, 10); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("codec 6: err=%v, want ErrUnsupportedCodec", err)
	}
	if _, err := Compress(6, nil); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("codec 6: err=%v, want ErrUnsupportedCodec", err)
	}
}

// TestDecompressEmpty proves an empty records section round-trips.
func TestDecompressEmpty(t *testing.T) {
	for _, codec := range allCodecs {
		compressed, err := Compress(codec, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decompress(codec, compressed, 0)
		if err != nil || len(got) != 0 {
			t.Errorf("%v: %d bytes, err=%v", codec, len(got), err)
		}
	}
}

// zstdFrame lays out by hand a zstd frame with the given window and one
// raw block of content, without a content size, so the decoder has only
// the declared window to go by.
func zstdFrame(windowLog int, content []byte) []byte {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd} // magic
	frame = append(frame, 0)                // descriptor: no content size, not single segment, no checksum
	frame = append(frame, byte(windowLog-10)<<3)
	blockHeader := 1 | len(content)<<3 // last block, raw
	frame = append(frame, byte(blockHeader), byte(blockHeader>>8), byte(blockHeader>>16))
	return append(frame, content...)
}

// TestZstdWindowLimit proves a zstd frame declaring a window larger than
// the decoder accepts is refused before the window is allocated.
func TestZstdWindowLimit(t *testing.T) {
	const content = "small content in a large window"
	for _, tt := range []struct {
		name      string
		windowLog int
		capBytes  int
		accepted  bool
	}{
		{"8 MiB window, 1 MiB cap: the floor", 23, 1 << 20, true},
		{"16 MiB window, 1 MiB cap", 24, 1 << 20, false},
		{"32 MiB window, 32 MiB cap", 25, 32 << 20, true},
		{"256 MiB window, 1 GiB cap: above the maximum", 28, 1 << 30, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			var err error
			allocated := allocatedBytes(func() { out, err = Decompress(Zstd, zstdFrame(tt.windowLog, []byte(content)), tt.capBytes) })
			if tt.accepted {
				if err != nil || string(out) != content {
					t.Fatalf("got %q, err=%v", out, err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err=%v, want ErrTooLarge", err)
			}
			if allocated > 1<<20 {
				t.Fatalf("refusing the window allocated %d bytes", allocated)
			}
		})
	}
}

// stuckReader never makes progress and never fails.
type stuckReader struct{ reads int }

func (r *stuckReader) Read([]byte) (int, error) { r.reads++; return 0, nil }

// TestReadBoundedStopsWithoutProgress proves a codec that stops producing
// output without an error cannot hold the caller in a loop.
func TestReadBoundedStopsWithoutProgress(t *testing.T) {
	r := &stuckReader{}
	if _, err := readBounded(r, 0, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err=%v, want ErrCorrupt", err)
	}
	if r.reads > readsEmptyMax+1 {
		t.Fatalf("%d reads, want at most %d", r.reads, readsEmptyMax+1)
	}
}

// TestDecompressNegativeCap proves a negative cap acts as zero rather than
// failing to allocate.
func TestDecompressNegativeCap(t *testing.T) {
	for _, codec := range allCodecs {
		compressed, err := Compress(codec, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decompress(codec, compressed, -1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v: err=%v, want ErrTooLarge", codec, err)
		}
	}
}
