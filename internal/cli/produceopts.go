package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrInvalidAcks reports an --acks value other than all, 1 or 0.
var ErrInvalidAcks = errors.New("want all, 1 or 0")

// ErrInvalidCompression reports an unknown --compression codec.
var ErrInvalidCompression = errors.New("want none, gzip, snappy, lz4 or zstd")

// ParseAcks parses --acks. Idempotent writes need acknowledgement from every
// in-sync replica, so only "all" keeps them; 1 and 0 turn them off, which is
// why the second result says whether idempotence may stay on.
func ParseAcks(text string) (acks kgo.Acks, idempotent bool, err error) {
	switch strings.ToLower(text) {
	case "all", "-1":
		return kgo.AllISRAcks(), true, nil
	case "1":
		return kgo.LeaderAck(), false, nil
	case "0":
		return kgo.NoAck(), false, nil
	}
	return kgo.Acks{}, false, fmt.Errorf("acks %q: %w", text, ErrInvalidAcks)
}

// ParseCompression parses --compression into the codec batches are written
// with.
func ParseCompression(text string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(text) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: %w", text, ErrInvalidCompression)
}
