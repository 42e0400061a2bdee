package batch

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// 64 KiB blocks, as the Java client writes: readers then need
		// only 64 KiB buffers.
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			panic(fmt.Sprintf("lz4 writer options rejected: %v", err))
		}
		return w
	}}
	// zstdEncoder is built on first use: its state is large and most
	// processes only decompress. EncodeAll is safe for concurrent use.
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil)
		if err != nil {
			panic(fmt.Sprintf("zstd encoder options rejected: %v", err))
		}
		return e
	})
)

// Compress compresses a records section with codec, in the forms Kafka
// clients produce and read: gzip, raw snappy (which the Java client reads
// as well as its own xerial framing), the LZ4 frame format, a zstd frame.
// For None it returns src itself.
func Compress(codec Codec, src []byte) ([]byte, error) {
	switch codec {
	case None:
		return src, nil
	case Gzip:
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		out, err := compressStream(w, src)
		if err != nil {
			return nil, fmt.Errorf("compress gzip: %w", err)
		}
		return out, nil
	case Snappy:
		return snappy.Encode(nil, src), nil
	case LZ4:
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		out, err := compressStream(w, src)
		if err != nil {
			return nil, fmt.Errorf("compress lz4: %w", err)
		}
		return out, nil
	case Zstd:
		return zstdEncoder().EncodeAll(src, nil), nil
	}
	return nil, fmt.Errorf("compress: %v: %w", codec, ErrUnsupportedCodec)
}

// streamWriter is what the gzip and lz4 writers share.
type streamWriter interface {
	Reset(w io.Writer)
	Write(p []byte) (int, error)
	Close() error
}

func compressStream(w streamWriter, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	w.Reset(&buf)
	// Drop the reference to buf before the writer goes back to its pool.
	defer w.Reset(nil)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
