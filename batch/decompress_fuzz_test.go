package batch

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecompress feeds arbitrary bytes to every codec under a small cap:
// decoding never panics, never returns more than the cap, fails only with
// the package's error vocabulary, and round-trips what Compress produced.
func FuzzDecompress(f *testing.F) {
	for _, codec := range []Codec{Gzip, Snappy, LZ4, Zstd} {
		compressed, err := Compress(codec, bytes.Repeat([]byte("cairn "), 100))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(codec), compressed)
	}
	f.Add(uint8(Snappy), []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0x7f})
	const capBytes = 64 << 10
	f.Fuzz(func(t *testing.T, which uint8, src []byte) {
		codec := Codec(1 + which%4)
		out, err := Decompress(codec, src, capBytes)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("%s: error outside the vocabulary: %v", codec, err)
			}
			return
		}
		if len(out) > capBytes {
			t.Fatalf("%s: %d bytes out, cap %d", codec, len(out), capBytes)
		}
		again, err := Compress(codec, out)
		if err != nil {
			t.Fatalf("%s: compress what was decompressed: %v", codec, err)
		}
		back, err := Decompress(codec, again, capBytes)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("%s: round trip failed: %v", codec, err)
		}
	})
}
