package cli

import (
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultFormat is the --format used when none is given: the value, then a
// newline. It is written the way a user types it, with an escaped newline.
const DefaultFormat = `{{.Value}}\n`

// TemplateRecord is what a --format template sees for one record.
type TemplateRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string // empty for a null key
	Value     string // empty for a null value
	Timestamp time.Time
	Headers   []TemplateHeader // in record order, duplicates kept
}

// TemplateHeader is one record header as a template sees it.
type TemplateHeader struct {
	Key   string
	Value string
}

// Header returns the value of the first header named key, or "" when there is
// none, so a template can write {{.Header "trace-id"}}.
func (r TemplateRecord) Header(key string) string {
	for _, header := range r.Headers {
		if header.Key == key {
			return header.Value
		}
	}
	return ""
}

// NewTemplateRecord converts a consumed record for template rendering.
func NewTemplateRecord(record *kgo.Record) TemplateRecord {
	headers := make([]TemplateHeader, len(record.Headers))
	for i, header := range record.Headers {
		headers[i] = TemplateHeader{Key: header.Key, Value: string(header.Value)}
	}
	return TemplateRecord{
		Topic:     record.Topic,
		Partition: record.Partition,
		Offset:    record.Offset,
		Key:       string(record.Key),
		Value:     string(record.Value),
		Timestamp: record.Timestamp,
		Headers:   headers,
	}
}

// Unescape turns the escapes a shell makes awkward to type into the
// characters they name: \n a newline, \t a tab, \\ one backslash. Any other
// backslash is kept as is, so template text such as a regexp survives.
func Unescape(text string) string {
	if !strings.Contains(text, `\`) {
		return text
	}
	var out strings.Builder
	out.Grow(len(text))
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' || i+1 == len(text) {
			out.WriteByte(text[i])
			continue
		}
		switch text[i+1] {
		case 'n':
			out.WriteByte('\n')
		case 't':
			out.WriteByte('\t')
		case '\\':
			out.WriteByte('\\')
		default:
			out.WriteByte('\\')
			continue
		}
		i++
	}
	return out.String()
}

// Formatter renders records through a --format template.
type Formatter struct {
	template *template.Template
}

// NewFormatter parses format, after Unescape, as a text/template over
// TemplateRecord.
func NewFormatter(format string) (*Formatter, error) {
	parsed, err := template.New("format").Option("missingkey=error").Parse(Unescape(format))
	if err != nil {
		return nil, fmt.Errorf("parse --format: %w", err)
	}
	return &Formatter{template: parsed}, nil
}

// Write renders one record to w.
func (f *Formatter) Write(w io.Writer, record *kgo.Record) error {
	if err := f.template.Execute(w, NewTemplateRecord(record)); err != nil {
		return fmt.Errorf("render record %s/%d@%d: %w", record.Topic, record.Partition, record.Offset, err)
	}
	return nil
}
