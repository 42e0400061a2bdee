package cli

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseAcks(t *testing.T) {
	cases := []struct {
		text       string
		acks       kgo.Acks
		idempotent bool
	}{
		{"all", kgo.AllISRAcks(), true},
		{"-1", kgo.AllISRAcks(), true},
		{"1", kgo.LeaderAck(), false},
		{"0", kgo.NoAck(), false},
	}
	for _, c := range cases {
		acks, idempotent, err := ParseAcks(c.text)
		if err != nil || acks != c.acks || idempotent != c.idempotent {
			t.Errorf("ParseAcks(%q) = %v, %v, %v", c.text, acks, idempotent, err)
		}
	}
	if _, _, err := ParseAcks("2"); !errors.Is(err, ErrInvalidAcks) {
		t.Errorf("ParseAcks(2) err = %v", err)
	}
}

func TestParseCompression(t *testing.T) {
	cases := map[string]kgo.CompressionCodec{
		"none":   kgo.NoCompression(),
		"gzip":   kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(),
		"lz4":    kgo.Lz4Compression(),
		"ZSTD":   kgo.ZstdCompression(),
	}
	for text, want := range cases {
		got, err := ParseCompression(text)
		if err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v", text, got, err)
		}
	}
	if _, err := ParseCompression("brotli"); !errors.Is(err, ErrInvalidCompression) {
		t.Errorf("brotli err = %v", err)
	}
}
