package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// ErrTooLarge reports a batch that exceeds a Limits cap: decompressed
// bytes, records or headers. It is always wrapped with detail.
var ErrTooLarge = errors.New("batch: too large")

// ErrUnsupportedCodec reports a compression codec this package does not
// know (attribute bits 0-2 above 4).
var ErrUnsupportedCodec = errors.New("batch: unsupported codec")

const (
	// The zstd decoder allocates the window a frame declares before
	// decoding it, so the window accepted follows the output cap: at
	// least zstdWindowBytesFloor, which covers Kafka producers up to
	// zstd level 19 whatever the cap, and at most zstdWindowBytesMax,
	// the reference decoder's default limit (level 22 needs it).
	zstdWindowBytesFloor = 8 << 20
	zstdWindowBytesMax   = 1 << 27

	// outputBytesInitial is the first output buffer when the compressed
	// form gives no usable size hint.
	outputBytesInitial = 4 << 10
)

// xerialMagic opens the framing the Java snappy library writes: magic,
// then a version and a compatible version (int32 each), then chunks of
// [int32 compressed length][raw snappy block].
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderBytes = 16

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}
	lz4Readers  = sync.Pool{New: func() any { return &lz4Reader{r: lz4.NewReader(nil)} }}
	zstdReaders = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // decode on the caller's goroutine
			zstd.WithDecoderLowmem(true))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder options rejected: %v", err))
		}
		return d
	}}
)

// Decompress decompresses src, which holds the records section of a batch
// compressed with codec, failing with ErrTooLarge as soon as the output
// would pass maxBytes. It never allocates more than about twice maxBytes
// plus the codec's fixed buffers, whatever src claims: an lz4 frame's
// blocks (up to 4 MiB each), or a zstd frame's window, which is refused
// above the larger of maxBytes and 8 MiB, and above 128 MiB. A section
// whose gzip trailer, lz4 frame descriptor or zstd frame header declares
// more than maxBytes is refused before any output is allocated. For None it
// returns src itself. A negative maxBytes counts as 0.
func Decompress(codec Codec, src []byte, maxBytes int) ([]byte, error) {
	maxBytes = max(maxBytes, 0)
	var out []byte
	var err error
	switch codec {
	case None:
		if len(src) > maxBytes {
			return nil, fmt.Errorf("records of %d bytes above limit %d: %w", len(src), maxBytes, ErrTooLarge)
		}
		return src, nil
	case Gzip:
		out, err = decompressGzip(src, maxBytes)
	case Snappy:
		out, err = decompressSnappy(src, maxBytes)
	case LZ4:
		out, err = decompressLZ4(src, maxBytes)
	case Zstd:
		out, err = decompressZstd(src, maxBytes)
	default:
		return nil, fmt.Errorf("decompress: %v: %w", codec, ErrUnsupportedCodec)
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %v: %w", codec, err)
	}
	return out, nil
}

// gzipReader and lz4Reader are pooled with the bytes.Reader they read
// from, whose reset to nil releases the batch once decoding is done.
type gzipReader struct {
	r   gzip.Reader
	src bytes.Reader
}

type lz4Reader struct {
	r   *lz4.Reader
	src bytes.Reader
}

func decompressGzip(src []byte, maxBytes int) ([]byte, error) {
	g := gzipReaders.Get().(*gzipReader)
	defer gzipReaders.Put(g)
	defer g.src.Reset(nil)
	g.src.Reset(src)
	if err := g.r.Reset(&g.src); err != nil {
		return nil, corrupt(err)
	}
	hint := outputBytesInitial
	if len(src) >= 4 {
		// The trailer's ISIZE: the size modulo 2^32 of the last member.
		// That member alone inflates to at least ISIZE (a stream whose
		// ISIZE lies fails its check at the end), so a batch declaring
		// more than the cap is refused before any output is allocated.
		hint = int(binary.LittleEndian.Uint32(src[len(src)-4:]))
		if hint > maxBytes {
			return nil, fmt.Errorf("gzip trailer declares %d bytes, above limit %d: %w", hint, maxBytes, ErrTooLarge)
		}
	}
	return readBounded(&g.r, hint, maxBytes)
}

func decompressLZ4(src []byte, maxBytes int) ([]byte, error) {
	l := lz4Readers.Get().(*lz4Reader)
	defer lz4Readers.Put(l)
	defer l.src.Reset(nil)
	if size, ok := lz4ContentSize(src); ok && size > uint64(maxBytes) {
		return nil, fmt.Errorf("lz4 frame declares %d bytes, above limit %d: %w", size, maxBytes, ErrTooLarge)
	}
	l.src.Reset(src)
	l.r.Reset(&l.src)
	return readBounded(l.r, 4*len(src), maxBytes)
}

func decompressZstd(src []byte, maxBytes int) ([]byte, error) {
	d := zstdReaders.Get().(*zstd.Decoder)
	defer zstdReaders.Put(d)
	window := uint64(min(max(maxBytes, zstdWindowBytesFloor), zstdWindowBytesMax))
	if err := d.ResetWithOptions(bytes.NewReader(src), zstd.WithDecoderMaxWindow(window)); err != nil {
		return nil, corrupt(err)
	}
	// Release the source before the decoder goes back to the pool; with a
	// nil reader Reset cannot fail.
	defer func() { _ = d.Reset(nil) }()
	hint := 4 * len(src)
	var frame zstd.Header
	if frame.Decode(src) == nil && frame.HasFCS {
		// The first frame alone holds its declared content size (the
		// decoder checks it), so more than the cap is refused at once.
		if frame.FrameContentSize > uint64(maxBytes) {
			return nil, fmt.Errorf("zstd frame declares %d bytes, above limit %d: %w", frame.FrameContentSize, maxBytes, ErrTooLarge)
		}
		hint = int(frame.FrameContentSize)
	}
	out, err := readBounded(d, hint, maxBytes)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, fmt.Errorf("window above limit %d bytes: %w", window, ErrTooLarge)
	}
	return out, err
}

// lz4FrameMagic opens an LZ4 frame (little-endian 0x184D2204).
var lz4FrameMagic = []byte{0x04, 0x22, 0x4d, 0x18}

// lz4ContentSize reads the content size an LZ4 frame's descriptor
// declares, when its flag byte says one follows the block descriptor.
func lz4ContentSize(src []byte) (uint64, bool) {
	const flagContentSize = 1 << 3
	if len(src) < 14 || !bytes.HasPrefix(src, lz4FrameMagic) || src[4]&flagContentSize == 0 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(src[6:14]), true
}

// decompressSnappy accepts both raw snappy, which most clients send, and
// the xerial framing the Java client sends.
func decompressSnappy(src []byte, maxBytes int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		size, err := snappy.DecodedLen(src)
		if err != nil {
			return nil, corrupt(err)
		}
		if size > maxBytes {
			return nil, fmt.Errorf("declared %d bytes above limit %d: %w", size, maxBytes, ErrTooLarge)
		}
		out, err := snappy.Decode(make([]byte, size), src)
		if err != nil {
			return nil, corrupt(err)
		}
		return out, nil
	}
	return decompressXerial(src, maxBytes)
}

// decompressXerial walks the chunk headers first, checking the framing
// and summing the sizes the chunks declare, so the output is allocated
// once, after the total is known to fit maxBytes.
func decompressXerial(src []byte, maxBytes int) ([]byte, error) {
	if len(src) < xerialHeaderBytes {
		return nil, fmt.Errorf("xerial header of %d bytes: %w", len(src), ErrCorrupt)
	}
	src = src[xerialHeaderBytes:]
	total := 0
	for chunks := src; len(chunks) > 0; {
		chunk, next, err := nextXerialChunk(chunks)
		if err != nil {
			return nil, err
		}
		size, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, corrupt(err)
		}
		if size > maxBytes-total {
			return nil, fmt.Errorf("xerial chunks declare over %d bytes, above limit %d: %w", total+size, maxBytes, ErrTooLarge)
		}
		total += size
		chunks = next
	}
	out := make([]byte, 0, total)
	for chunks := src; len(chunks) > 0; {
		chunk, next, _ := nextXerialChunk(chunks) // checked above
		decoded, err := snappy.Decode(out[len(out):cap(out)], chunk)
		if err != nil {
			return nil, corrupt(err)
		}
		out = out[:len(out)+len(decoded)]
		chunks = next
	}
	return out, nil
}

// nextXerialChunk splits the first [int32 length][snappy block] off chunks.
func nextXerialChunk(chunks []byte) (chunk, rest []byte, err error) {
	if len(chunks) < 4 {
		return nil, nil, fmt.Errorf("xerial chunk length cut short: %w", ErrCorrupt)
	}
	chunkBytes := binary.BigEndian.Uint32(chunks)
	if uint64(chunkBytes) > uint64(len(chunks)-4) {
		return nil, nil, fmt.Errorf("xerial chunk of %d bytes with %d left: %w", chunkBytes, len(chunks)-4, ErrCorrupt)
	}
	return chunks[4 : 4+chunkBytes], chunks[4+chunkBytes:], nil
}

// readsEmptyMax bounds successive reads that return nothing, so a codec
// that stops making progress cannot hold the caller forever.
const readsEmptyMax = 100

// readBounded reads r to its end into a buffer that starts at sizeHint
// bytes and grows geometrically, failing once more than maxBytes arrive.
func readBounded(r io.Reader, sizeHint, maxBytes int) ([]byte, error) {
	out := make([]byte, 0, min(max(sizeHint, outputBytesInitial), maxBytes+1))
	readsEmpty := 0
	for {
		if len(out) == cap(out) {
			if len(out) > maxBytes {
				out = collectRefused(out)
				return nil, fmt.Errorf("output above limit %d bytes: %w", maxBytes, ErrTooLarge)
			}
			out = grow(out, 1, maxBytes+1)
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, corrupt(err)
		}
		if n > 0 {
			readsEmpty = 0
			continue
		}
		if readsEmpty++; readsEmpty > readsEmptyMax {
			return nil, corrupt(io.ErrNoProgress)
		}
	}
	if len(out) > maxBytes {
		out = collectRefused(out)
		return nil, fmt.Errorf("output above limit %d bytes: %w", maxBytes, ErrTooLarge)
	}
	return out, nil
}

// refusedCollectBytes is the output size from which a refusal collects
// garbage at once (collectRefused).
const refusedCollectBytes = 16 << 20

// collectRefused drops the output of a refused decode and, when it grew
// past refusedCollectBytes, runs a collection: a cycle that ran while the
// decode held its last two buffers (up to one and a half times the cap)
// counted them live and set the next heap goal at twice that, so a few
// such batches in a row, each leaving its garbage for the collector,
// raised the process's memory by several caps. A well-behaved producer
// never gets here, and the decode it follows costs more than the cycle.
func collectRefused(out []byte) []byte {
	if cap(out) < refusedCollectBytes {
		return out
	}
	// At most one forced collection per refusedCollectInterval: a stream
	// of bombs must not keep the collector running back to back.
	now := time.Now().UnixNano()
	last := lastRefusedCollect.Load()
	if now-last < int64(refusedCollectInterval) || !lastRefusedCollect.CompareAndSwap(last, now) {
		return nil
	}
	runtime.GC()
	return nil
}

// refusedCollectInterval spaces the collections collectRefused forces.
const refusedCollectInterval = time.Second

// lastRefusedCollect is when collectRefused last forced a collection
// (Unix nanoseconds).
var lastRefusedCollect atomic.Int64

// grow returns b with room for at least need more bytes, doubling its
// capacity where that stays within capMax.
func grow(b []byte, need, capMax int) []byte {
	if cap(b)-len(b) >= need {
		return b
	}
	newCap := min(max(2*cap(b), len(b)+need, outputBytesInitial), max(capMax, len(b)+need))
	grown := make([]byte, len(b), newCap)
	copy(grown, b)
	return grown
}

// corrupt marks a codec's complaint about its input as corruption.
func corrupt(err error) error {
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}
