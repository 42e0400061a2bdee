package cli

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseStartAcceptsEveryForm(t *testing.T) {
	cases := []struct {
		text string
		want Start
	}{
		{"beginning", Start{Kind: StartBeginning}},
		{"BEGINNING", Start{Kind: StartBeginning}},
		{"end", Start{Kind: StartEnd}},
		{"0", Start{Kind: StartOffset, Offset: 0}},
		{"1234", Start{Kind: StartOffset, Offset: 1234}},
		{"2026-01-02T15:04:05Z", Start{Kind: StartTime, Time: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)}},
		{"2026-01-02T15:04:05.5+01:00", Start{Kind: StartTime, Time: time.Date(2026, 1, 2, 14, 4, 5, 500e6, time.UTC)}},
	}
	for _, c := range cases {
		got, err := ParseStart(c.text)
		if err != nil {
			t.Errorf("ParseStart(%q): %v", c.text, err)
			continue
		}
		if got.Kind != c.want.Kind || got.Offset != c.want.Offset || !got.Time.Equal(c.want.Time) {
			t.Errorf("ParseStart(%q) = %+v, want %+v", c.text, got, c.want)
		}
	}
}

func TestParseStartRejectsNonsense(t *testing.T) {
	for _, text := range []string{"", "start", "-1", "12abc", "2026-01-02", "2026-01-02 15:04:05"} {
		if _, err := ParseStart(text); !errors.Is(err, ErrInvalidStart) {
			t.Errorf("ParseStart(%q) err = %v, want ErrInvalidStart", text, err)
		}
	}
}

func TestFirstOffsetIsBoundedToTheLog(t *testing.T) {
	bounds := PartitionBounds{LogStartOffset: 10, HighWatermark: 20, TimeOffset: 15}
	cases := []struct {
		name  string
		start Start
		want  int64
	}{
		{"beginning is the log start", Start{Kind: StartBeginning}, 10},
		{"end is the high watermark", Start{Kind: StartEnd}, 20},
		{"offset inside the log", Start{Kind: StartOffset, Offset: 12}, 12},
		{"offset below the log start", Start{Kind: StartOffset, Offset: 3}, 10},
		{"offset past the end", Start{Kind: StartOffset, Offset: 99}, 20},
		{"time uses the listed offset", Start{Kind: StartTime}, 15},
	}
	for _, c := range cases {
		if got := c.start.FirstOffset(bounds); got != c.want {
			t.Errorf("%s: FirstOffset = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestKgoOffsetMatchesTheStartKind(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	cases := []struct {
		start       Start
		firstOffset int64
		want        kgo.Offset
	}{
		{Start{Kind: StartBeginning}, 0, kgo.NewOffset().AtStart()},
		{Start{Kind: StartEnd}, 0, kgo.NewOffset().AtEnd()},
		{Start{Kind: StartOffset, Offset: 99}, 20, kgo.NewOffset().At(20)},
		{Start{Kind: StartTime, Time: at}, 0, kgo.NewOffset().AfterMilli(1_700_000_000_123)},
	}
	for _, c := range cases {
		if got := c.start.KgoOffset(c.firstOffset); got != c.want {
			t.Errorf("KgoOffset(%+v) = %v, want %v", c.start, got, c.want)
		}
	}
}
