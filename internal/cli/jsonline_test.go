package cli

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func jsonLine(t *testing.T, record *kgo.Record) string {
	t.Helper()
	var out strings.Builder
	if err := WriteJSONLine(&out, record); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestJSONLineHasEveryFieldOnOneLine(t *testing.T) {
	record := sampleRecord()
	record.Value = []byte(`<a & b>`)
	got := jsonLine(t, record)
	want := `{"topic":"orders","partition":2,"offset":41,"timestamp":"2026-01-02T03:04:05.006Z",` +
		`"key":"order-42","value":"<a & b>","headers":[{"key":"trace","value":"ab12"},` +
		`{"key":"trace","value":"second"},{"key":"type","value":"OrderCreated"}]}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestJSONLineShowsNullKeyValueAndHeaderAsNull(t *testing.T) {
	record := sampleRecord()
	record.Key = nil
	record.Value = nil
	record.Headers = []kgo.RecordHeader{{Key: "h", Value: nil}}
	got := jsonLine(t, record)
	for _, part := range []string{`"key":null`, `"value":null`, `"headers":[{"key":"h","value":null}]`} {
		if !strings.Contains(got, part) {
			t.Errorf("%s lacks %s", got, part)
		}
	}
	if strings.Contains(got, "base64") {
		t.Errorf("null fields got base64 twins: %s", got)
	}
}

func TestJSONLineKeepsEmptyDistinctFromNull(t *testing.T) {
	record := sampleRecord()
	record.Key = []byte{}
	record.Headers = nil
	got := jsonLine(t, record)
	if !strings.Contains(got, `"key":""`) || !strings.Contains(got, `"headers":[]`) {
		t.Errorf("got %s", got)
	}
}

func TestJSONLineAddsExactBase64ForInvalidUTF8(t *testing.T) {
	key := []byte{'k', 0xff, 'x'}
	value := []byte{0x00, 0x80, 0xfe, 'v'}
	header := []byte{0xc3} // a truncated two-byte sequence
	record := sampleRecord()
	record.Key, record.Value = key, value
	record.Headers = []kgo.RecordHeader{{Key: "bin", Value: header}}

	var decoded JSONRecord
	if err := json.Unmarshal([]byte(jsonLine(t, record)), &decoded); err != nil {
		t.Fatal(err)
	}
	exact := func(field string) []byte {
		data, err := base64.StdEncoding.DecodeString(field)
		if err != nil {
			t.Fatalf("decode %q: %v", field, err)
		}
		return data
	}
	if string(exact(decoded.KeyBase64)) != string(key) || *decoded.Key != "k\uFFFDx" {
		t.Errorf("key %q / %q", *decoded.Key, decoded.KeyBase64)
	}
	if string(exact(decoded.ValueBase64)) != string(value) || *decoded.Value != "\x00\uFFFD\uFFFDv" {
		t.Errorf("value %q / %q", *decoded.Value, decoded.ValueBase64)
	}
	h := decoded.Headers[0]
	if string(exact(h.ValueBase64)) != string(header) || *h.Value != "\uFFFD" {
		t.Errorf("header %q / %q", *h.Value, h.ValueBase64)
	}
}

func TestJSONLineTimestampIsUTC(t *testing.T) {
	record := sampleRecord()
	record.Timestamp = record.Timestamp.In(time.FixedZone("UTC+5", 5*3600))
	if got := NewJSONRecord(record).Timestamp; got != "2026-01-02T03:04:05.006Z" {
		t.Errorf("timestamp = %q", got)
	}
}
