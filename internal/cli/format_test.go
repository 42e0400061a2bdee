package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func sampleRecord() *kgo.Record {
	return &kgo.Record{
		Topic:     "orders",
		Partition: 2,
		Offset:    41,
		Key:       []byte("order-42"),
		Value:     []byte("created"),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		Headers: []kgo.RecordHeader{
			{Key: "trace", Value: []byte("ab12")},
			{Key: "trace", Value: []byte("second")},
			{Key: "type", Value: []byte("OrderCreated")},
		},
	}
}

func TestUnescape(t *testing.T) {
	cases := map[string]string{
		`plain`:           "plain",
		`{{.Value}}\n`:    "{{.Value}}\n",
		`a\tb\nc`:         "a\tb\nc",
		`back\\slash`:     `back\slash`,
		`back\\n`:         `back\n`,
		`\d+ stays`:       `\d+ stays`,
		`trailing\`:       `trailing\`,
		"real\nnewline\t": "real\nnewline\t",
	}
	for in, want := range cases {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func render(t *testing.T, format string, record *kgo.Record) string {
	t.Helper()
	formatter, err := NewFormatter(format)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := formatter.Write(&out, record); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestDefaultFormatPrintsTheValueAndANewline(t *testing.T) {
	if got := render(t, DefaultFormat, sampleRecord()); got != "created\n" {
		t.Errorf("got %q", got)
	}
}

func TestFormatSeesEveryField(t *testing.T) {
	format := `{{.Topic}}\t{{.Partition}}\t{{.Offset}}\t{{.Key}}\t{{.Value}}\t{{.Timestamp.UnixMilli}}\t{{.Header "trace"}}\t{{len .Headers}}{{range .Headers}} {{.Key}}={{.Value}}{{end}}\n`
	want := "orders\t2\t41\torder-42\tcreated\t1767323045006\tab12\t3 trace=ab12 trace=second type=OrderCreated\n"
	if got := render(t, format, sampleRecord()); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestFormatRendersANullKeyAsEmpty(t *testing.T) {
	record := sampleRecord()
	record.Key = nil
	if got := render(t, `[{{.Key}}]`, record); got != "[]" {
		t.Errorf("got %q", got)
	}
	if got := render(t, `[{{.Header "missing"}}]`, record); got != "[]" {
		t.Errorf("missing header rendered %q", got)
	}
}

func TestFormatErrors(t *testing.T) {
	if _, err := NewFormatter(`{{.Value`); err == nil {
		t.Error("unterminated action parsed")
	}
	formatter, err := NewFormatter(`{{.NoSuchField}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := formatter.Write(&strings.Builder{}, sampleRecord()); err == nil || !strings.Contains(err.Error(), "orders/2@41") {
		t.Errorf("err = %v, want a render error naming the record", err)
	}
}
