package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzNext walks arbitrary bytes as a segment file: every batch split off
// must be exactly what its header declares with a valid CRC, and anything
// else must stop the walk with ErrShort or ErrCorrupt.
func FuzzNext(f *testing.F) {
	f.Fuzz(func(t *testing.T, segment []byte) {
		if _, err := ParseHeader(segment); len(segment) < HeaderBytes && !errors.Is(err, ErrShort) {
			t.Fatalf("ParseHeader of %d bytes: err=%v, want ErrShort", len(segment), err)
		}
		// Each batch is at least HeaderBytes long, so the walk ends.
		for rest := segment; len(rest) > 0; {
			h, whole, next, err := Next(rest)
			if err != nil {
				if !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Next: err=%v, want ErrShort or ErrCorrupt", err)
				}
				if whole != nil || len(next) != len(rest) {
					t.Fatalf("Next failed but returned %d whole bytes and %d of %d rest bytes", len(whole), len(next), len(rest))
				}
				return
			}
			if len(whole) != h.TotalBytes() || len(whole)+len(next) != len(rest) || !bytes.Equal(whole, rest[:len(whole)]) {
				t.Fatalf("split %d+%d bytes of %d, header says %d", len(whole), len(next), len(rest), h.TotalBytes())
			}
			if err := CheckCRC(whole); err != nil {
				t.Fatalf("CheckCRC after Next: %v", err)
			}
			if again, err := ParseHeader(whole); err != nil || again != h {
				t.Fatalf("ParseHeader disagrees with Next: %+v, %v", again, err)
			}
			moved := bytes.Clone(whole)
			SetBaseOffset(moved, h.BaseOffset+1)
			SetPartitionLeaderEpoch(moved, h.PartitionLeaderEpoch+1)
			if err := CheckCRC(moved); err != nil {
				t.Fatalf("CRC broken by assigning offset and epoch: %v", err)
			}
			rest = next
		}
	})
}

// fuzzLimits are small so the fuzzer can reach every cap.
var fuzzLimits = Limits{DecompressedBytesMax: 1 << 20, RecordsMax: 1 << 12, HeadersMax: 1 << 12}

// codecFixedBytes bounds a codec's own buffers: an lz4 frame's two 4 MiB
// blocks, or a zstd window of up to 8 MiB (the floor) and its blocks.
const codecFixedBytes = 12 << 20

// FuzzValidate feeds arbitrary bytes to Validate, as they are and with
// length, magic and CRC repaired so mutations reach the record decoder.
// It must not panic, must allocate within what the limits allow, and every
// batch it accepts must decode the same with franz-go's decompressor and
// kmsg, and survive a round trip through Encode.
func FuzzValidate(f *testing.F) {
	f.Fuzz(func(t *testing.T, whole []byte) {
		checkValidate(t, whole)
		if len(whole) >= HeaderBytes {
			repaired := bytes.Clone(whole)
			binary.BigEndian.PutUint32(repaired[batchLengthAt:], uint32(len(repaired)-lengthPrefixBytes))
			repaired[magicAt] = MagicV2
			updateCRC(repaired)
			checkValidate(t, repaired)
		}
	})
}

var fuzzDecompressor = kgo.DefaultDecompressor()

// fuzzAllocationMax is what Validate may allocate under fuzzLimits, beyond
// the input's size.
var fuzzAllocationMax = 2*uint64(fuzzLimits.DecompressedBytesMax) + // output and its growth
	uint64(fuzzLimits.DecompressedBytesMax) + // header keys copied to strings
	uint64(fuzzLimits.RecordsMax)*uint64(unsafe.Sizeof(Record{})) +
	uint64(fuzzLimits.HeadersMax)*uint64(unsafe.Sizeof(RecordHeader{})) +
	codecFixedBytes

func checkValidate(t *testing.T, whole []byte) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h, records, err := Validate(whole, fuzzLimits)
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > fuzzAllocationMax+uint64(len(whole)) {
		t.Fatalf("Validate allocated %d bytes, limits allow %d (err=%v)", allocated, fuzzAllocationMax, err)
	}
	checkValidateEach(t, whole, records, err)
	if err != nil {
		for _, sentinel := range []error{ErrShort, ErrCorrupt, ErrInvalidRecord, ErrTooLarge, ErrUnsupportedCodec} {
			if errors.Is(err, sentinel) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if int(h.NumRecords) != len(records) || len(records) == 0 {
		t.Fatalf("header says %d records, decoded %d", h.NumRecords, len(records))
	}
	section, err := fuzzDecompressor.Decompress(whole[HeaderBytes:], kgo.CompressionCodecType(h.Codec()))
	if err != nil {
		t.Fatalf("accepted, but franz-go cannot decompress it: %v", err)
	}
	mine, _ := Decompress(h.Codec(), whole[HeaderBytes:], fuzzLimits.DecompressedBytesMax)
	if !bytes.Equal(section, mine) {
		t.Fatalf("franz-go decompressed %d bytes, Decompress %d", len(section), len(mine))
	}
	compareWithKmsg(t, h, records, kmsgDecode(t, section, len(records)))

	again, err := Encode(h, h.LastOffsetDelta, records, h.Codec())
	if err != nil {
		t.Fatalf("Encode of accepted records: %v", err)
	}
	_, decoded, err := Validate(again, fuzzLimits)
	if err != nil {
		t.Fatalf("Validate after Encode: %v", err)
	}
	sameRecords(t, decoded, records)
}

// checkValidateEach checks that ValidateEach, after Next, accepts what
// Validate accepts, refuses what it refuses with the same sentinel, and
// visits the records Validate returned.
func checkValidateEach(t *testing.T, whole []byte, records []Record, validateErr error) {
	h, batchBytes, rest, err := Next(whole)
	if err != nil || len(rest) != 0 {
		return // refused before the records; ValidateEach starts after Next
	}
	var visited []Record
	err = ValidateEach(h, batchBytes, fuzzLimits, func(r *Record) error {
		visited = append(visited, *r)
		return nil
	})
	if (err == nil) != (validateErr == nil) {
		t.Fatalf("ValidateEach err=%v, Validate err=%v", err, validateErr)
	}
	if err != nil {
		for _, sentinel := range []error{ErrInvalidRecord, ErrTooLarge, ErrUnsupportedCodec, ErrCorrupt} {
			if errors.Is(validateErr, sentinel) != errors.Is(err, sentinel) {
				t.Fatalf("ValidateEach err=%v, Validate err=%v: sentinels differ", err, validateErr)
			}
		}
		return
	}
	sameRecords(t, visited, records)
}

// fuzzSeeds are the committed seed inputs, by target and name. Names
// starting with "valid" must pass Validate; TestFuzzSeeds checks it.
func fuzzSeeds() map[string]map[string][]byte {
	small := []Record{
		{TimestampMs: 1_700_000_000_000, Key: []byte("order-1"), Value: []byte(`{"total":12}`)},
		{TimestampMs: 1_700_000_000_050, Value: []byte("no key"), Headers: []RecordHeader{{Key: "ce_type", Value: []byte("created")}, {Key: "trace"}}},
		{TimestampMs: 1_699_999_999_000, Key: []byte("order-1")},
		{TimestampMs: 1_700_000_000_100, Key: []byte{}, Value: bytes.Repeat([]byte("compressible "), 40)},
	}
	var kmsgSmall = kmsgRecords()[:5]
	validate := map[string][]byte{}
	for _, codec := range allCodecs {
		validate["valid-build-"+codec.String()] = Build(small, codec)
		validate["valid-franz-go-"+codec.String()] = kmsgBatch(kmsgSmall, codec, kgoCompress(codec))
	}
	validate["valid-xerial"] = kmsgBatch(kmsgSmall, Snappy, xerialFrame(64))
	appendTime := Build(small, Zstd)
	SetLogAppendTime(appendTime, 1_800_000_000_000)
	validate["valid-log-append-time"] = appendTime
	compacted, _ := Encode(Header{ProducerID: 3}, 7, []Record{{Offset: 2, Value: []byte("a")}, {Offset: 5, Value: []byte("b")}}, Gzip)
	validate["compacted-gaps"] = compacted
	torn := Build(small, LZ4)
	validate["torn"] = torn[:len(torn)-3]
	badCRC := Build(small, None)
	badCRC[len(badCRC)-1] ^= 1
	validate["bad-crc"] = badCRC

	segment := bytes.Join([][]byte{Build(small[:1], None), Build(small, Snappy), Build(small[1:], Zstd), torn[:70]}, nil)
	next := map[string][]byte{
		"segment-torn-tail": segment,
		"single":            Build(small, Gzip),
		"header-only":       Build(small, None)[:HeaderBytes],
		"empty":             {},
	}
	return map[string]map[string][]byte{"FuzzValidate": validate, "FuzzNext": next}
}

func seedPath(target, name string) string { return filepath.Join("testdata", "fuzz", target, name) }

// TestFuzzSeeds proves the committed seeds are what their names say, so
// the fuzzers start from batches that reach the record decoder. With
// -write-fuzz-seeds it writes them first.
func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		for name, input := range seeds {
			path := seedPath(target, name)
			if *writeFuzzSeeds {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", input), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stored, err := readSeed(path)
			if err != nil {
				t.Fatalf("%s: %v (regenerate with go test -run TestFuzzSeeds -write-fuzz-seeds)", path, err)
			}
			if target != "FuzzValidate" {
				continue
			}
			_, _, err = Validate(stored, DefaultLimits())
			if valid := strings.HasPrefix(name, "valid"); valid != (err == nil) {
				t.Errorf("%s: Validate err=%v, but the name says valid=%v", path, err, valid)
			}
		}
	}
}

// readSeed reads a one-value corpus file in the go test fuzz v1 format.
func readSeed(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	header, value, ok := strings.Cut(strings.TrimSpace(string(content)), "\n")
	if !ok || header != "go test fuzz v1" || !strings.HasPrefix(value, "[]byte(") || !strings.HasSuffix(value, ")") {
		return nil, fmt.Errorf("not a go test fuzz v1 file with one []byte")
	}
	s, err := strconv.Unquote(value[len("[]byte(") : len(value)-1])
	return []byte(s), err
}
