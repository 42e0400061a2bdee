package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// JSONRecord is one line of `cairn consume --json`; the package doc describes
// the fields.
type JSONRecord struct {
	Topic       string       `json:"topic"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	Timestamp   string       `json:"timestamp"`
	Key         *string      `json:"key"`
	KeyBase64   string       `json:"key_base64,omitempty"`
	Value       *string      `json:"value"`
	ValueBase64 string       `json:"value_base64,omitempty"`
	Headers     []JSONHeader `json:"headers"`
}

// JSONHeader is one record header in a JSONRecord. Header keys are strings in
// the Kafka protocol, so only the value carries a base64 twin.
type JSONHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// NewJSONRecord converts a consumed record for JSON output.
func NewJSONRecord(record *kgo.Record) JSONRecord {
	out := JSONRecord{
		Topic:     record.Topic,
		Partition: record.Partition,
		Offset:    record.Offset,
		Timestamp: record.Timestamp.UTC().Format(time.RFC3339Nano),
		Headers:   make([]JSONHeader, len(record.Headers)),
	}
	out.Key, out.KeyBase64 = jsonBytes(record.Key)
	out.Value, out.ValueBase64 = jsonBytes(record.Value)
	for i, header := range record.Headers {
		out.Headers[i].Key = header.Key
		out.Headers[i].Value, out.Headers[i].ValueBase64 = jsonBytes(header.Value)
	}
	return out
}

// jsonBytes renders bytes as a JSON string field and, when they are not valid
// UTF-8, their exact base64 twin. Nil bytes are null, which is how Kafka tells
// a null key or value from an empty one.
func jsonBytes(data []byte) (text *string, exact string) {
	if data == nil {
		return nil, ""
	}
	rendered := string(data)
	if !utf8.Valid(data) {
		// encoding/json would replace the invalid bytes as well; doing it
		// here makes the string field's content independent of the encoder.
		rendered = toValidUTF8(data)
		exact = base64.StdEncoding.EncodeToString(data)
	}
	return &rendered, exact
}

// toValidUTF8 replaces each byte that does not start a valid UTF-8 sequence
// with U+FFFD, one replacement per byte, as encoding/json does.
func toValidUTF8(data []byte) string {
	out := make([]rune, 0, len(data))
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		out = append(out, r) // DecodeRune yields RuneError for an invalid byte
		data = data[size:]
	}
	return string(out)
}

// WriteJSONLine writes record to w as one JSON object and a newline.
func WriteJSONLine(w io.Writer, record *kgo.Record) error {
	encoder := json.NewEncoder(w)
	// Values are data, not HTML: keep <, > and & readable.
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(NewJSONRecord(record)); err != nil {
		return fmt.Errorf("write record %s/%d@%d as JSON: %w", record.Topic, record.Partition, record.Offset, err)
	}
	return nil
}
