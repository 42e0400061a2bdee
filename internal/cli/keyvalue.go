package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrInvalidKeyValue reports an argument that is not key=value with a
// non-empty key.
var ErrInvalidKeyValue = errors.New("want key=value with a non-empty key")

// ErrDuplicateKey reports a config key given twice in one command.
var ErrDuplicateKey = errors.New("key given more than once")

// ParseKeyValue splits text at its first '=' into a non-empty key and a value,
// which may be empty and may itself contain '='.
func ParseKeyValue(text string) (key, value string, err error) {
	key, value, found := strings.Cut(text, "=")
	if !found || key == "" {
		return "", "", fmt.Errorf("%q: %w", text, ErrInvalidKeyValue)
	}
	return key, value, nil
}

// ParseConfigs parses repeated --config or --set arguments into the map the
// admin client sends. A key given twice is an error rather than a silent
// overwrite, because the order of flags is easy to get wrong in scripts.
func ParseConfigs(pairs []string) (map[string]*string, error) {
	configs := make(map[string]*string, len(pairs))
	for _, pair := range pairs {
		key, value, err := ParseKeyValue(pair)
		if err != nil {
			return nil, err
		}
		if _, seen := configs[key]; seen {
			return nil, fmt.Errorf("config %q: %w", key, ErrDuplicateKey)
		}
		configs[key] = &value
	}
	return configs, nil
}

// ParseHeaders parses repeated --header arguments into record headers, in the
// order given. Kafka allows a key to repeat, so duplicates are kept.
func ParseHeaders(pairs []string) ([]kgo.RecordHeader, error) {
	headers := make([]kgo.RecordHeader, 0, len(pairs))
	for _, pair := range pairs {
		key, value, err := ParseKeyValue(pair)
		if err != nil {
			return nil, fmt.Errorf("header %w", err)
		}
		headers = append(headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
	}
	return headers, nil
}

// LineBytesMax is the longest input line produce accepts. It is far above
// Kafka's default record size limit (1 MiB), so the broker or the batch size
// limit, not the reader, decides what is too large.
const LineBytesMax = 16 << 20

// NewLineScanner returns a scanner over r's lines of up to LineBytesMax bytes.
// A trailing "\r" is dropped from each line, so files with CRLF endings
// produce the same records as files with LF endings.
func NewLineScanner(r io.Reader) *bufio.Scanner {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64<<10), LineBytesMax)
	return scanner
}

// SplitLine splits one input line into a record key and value at the first
// occurrence of separator. With an empty separator, or when the line does not
// contain it, the key is nil (a null key) and the value is the whole line.
// The returned slices alias line.
func SplitLine(line []byte, separator string) (key, value []byte) {
	if separator == "" {
		return nil, line
	}
	before, after, found := bytes.Cut(line, []byte(separator))
	if !found {
		return nil, line
	}
	return before, after
}
