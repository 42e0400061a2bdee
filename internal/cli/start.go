package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrInvalidStart reports a --from value that is none of beginning, end, an
// offset or an RFC 3339 time.
var ErrInvalidStart = errors.New("invalid start: want beginning, end, an offset or an RFC 3339 time")

// StartKind says which kind of place consumption begins at.
type StartKind int

const (
	// StartEnd begins after the last record, waiting for new ones.
	StartEnd StartKind = iota
	// StartBeginning begins at each partition's log start offset.
	StartBeginning
	// StartOffset begins at the same offset in every partition.
	StartOffset
	// StartTime begins at the first record stamped at or after a time.
	StartTime
)

// Start is a parsed --from value.
type Start struct {
	Kind   StartKind
	Offset int64     // only for StartOffset
	Time   time.Time // only for StartTime
}

// ParseStart parses a --from value: "beginning", "end", a non-negative
// offset, or a time in RFC 3339 (fractional seconds allowed), such as
// 2026-01-02T15:04:05Z or 2026-01-02T15:04:05.5+01:00.
func ParseStart(text string) (Start, error) {
	switch strings.ToLower(text) {
	case "beginning":
		return Start{Kind: StartBeginning}, nil
	case "end":
		return Start{Kind: StartEnd}, nil
	}
	if offset, err := strconv.ParseInt(text, 10, 64); err == nil {
		if offset < 0 {
			return Start{}, fmt.Errorf("%w: offset %d is negative", ErrInvalidStart, offset)
		}
		return Start{Kind: StartOffset, Offset: offset}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return Start{}, fmt.Errorf("%w: %q", ErrInvalidStart, text)
	}
	return Start{Kind: StartTime, Time: at}, nil
}

// PartitionBounds is what the cluster reported about one partition just before
// consumption began.
type PartitionBounds struct {
	LogStartOffset int64
	HighWatermark  int64
	// TimeOffset is the first offset stamped at or after Start.Time, or the
	// high watermark when no record is that new; only read for StartTime.
	TimeOffset int64
}

// FirstOffset returns the offset consumption of one partition begins at. An
// offset outside the log is bounded to it: below the log start it begins at
// the log start (older records are gone), past the high watermark it begins
// at the high watermark and waits for new records.
func (s Start) FirstOffset(bounds PartitionBounds) int64 {
	var offset int64
	switch s.Kind {
	case StartBeginning:
		offset = bounds.LogStartOffset
	case StartOffset:
		offset = s.Offset
	case StartTime:
		offset = bounds.TimeOffset
	default:
		offset = bounds.HighWatermark
	}
	return min(max(offset, bounds.LogStartOffset), bounds.HighWatermark)
}

// KgoOffset returns the kgo offset to consume one partition from. firstOffset
// is FirstOffset's answer for that partition; only an exact --from offset uses
// it, so that an offset outside the log is bounded as FirstOffset documents
// rather than reset by the client.
func (s Start) KgoOffset(firstOffset int64) kgo.Offset {
	switch s.Kind {
	case StartBeginning:
		return kgo.NewOffset().AtStart()
	case StartOffset:
		return kgo.NewOffset().At(firstOffset)
	case StartTime:
		return kgo.NewOffset().AfterMilli(s.Time.UnixMilli())
	default:
		return kgo.NewOffset().AtEnd()
	}
}
