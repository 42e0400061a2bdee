package cli

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestParseKeyValueSplitsAtTheFirstEquals(t *testing.T) {
	cases := []struct{ text, key, value string }{
		{"retention.ms=1000", "retention.ms", "1000"},
		{"k=", "k", ""},
		{"expr=a=b", "expr", "a=b"},
	}
	for _, c := range cases {
		key, value, err := ParseKeyValue(c.text)
		if err != nil || key != c.key || value != c.value {
			t.Errorf("ParseKeyValue(%q) = %q, %q, %v; want %q, %q", c.text, key, value, err, c.key, c.value)
		}
	}
}

func TestParseKeyValueRejectsMissingKeyOrEquals(t *testing.T) {
	for _, text := range []string{"", "novalue", "=value"} {
		if _, _, err := ParseKeyValue(text); !errors.Is(err, ErrInvalidKeyValue) {
			t.Errorf("ParseKeyValue(%q) err = %v, want ErrInvalidKeyValue", text, err)
		}
	}
}

func TestParseConfigsBuildsTheMapAndRejectsDuplicates(t *testing.T) {
	configs, err := ParseConfigs([]string{"cleanup.policy=compact", "retention.ms=-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) != 2 || *configs["cleanup.policy"] != "compact" || *configs["retention.ms"] != "-1" {
		t.Errorf("configs = %v", configs)
	}
	if _, err := ParseConfigs([]string{"a=1", "a=2"}); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("duplicate key err = %v, want ErrDuplicateKey", err)
	}
	if _, err := ParseConfigs([]string{"oops"}); !errors.Is(err, ErrInvalidKeyValue) {
		t.Errorf("bad pair err = %v, want ErrInvalidKeyValue", err)
	}
}

func TestParseHeadersKeepsOrderAndDuplicates(t *testing.T) {
	headers, err := ParseHeaders([]string{"b=2", "a=1", "b=3", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range headers {
		got = append(got, h.Key+":"+string(h.Value))
	}
	if strings.Join(got, ",") != "b:2,a:1,b:3,empty:" {
		t.Errorf("headers = %v", got)
	}
	if _, err := ParseHeaders([]string{"noequals"}); !errors.Is(err, ErrInvalidKeyValue) {
		t.Errorf("err = %v, want ErrInvalidKeyValue", err)
	}
}

func TestSplitLine(t *testing.T) {
	cases := []struct {
		line, separator string
		key             *string
		value           string
	}{
		{"k:v", ":", ptr("k"), "v"},
		{"k:v:w", ":", ptr("k"), "v:w"},
		{"no separator here", ":", nil, "no separator here"},
		{"k::v", "::", ptr("k"), "v"},
		{":v", ":", ptr(""), "v"},
		{"k:v", "", nil, "k:v"},
	}
	for _, c := range cases {
		key, value := SplitLine([]byte(c.line), c.separator)
		if c.key == nil && key != nil {
			t.Errorf("SplitLine(%q, %q) key = %q, want null", c.line, c.separator, key)
		}
		if c.key != nil && (key == nil || string(key) != *c.key) {
			t.Errorf("SplitLine(%q, %q) key = %q, want %q (non-null)", c.line, c.separator, key, *c.key)
		}
		if string(value) != c.value {
			t.Errorf("SplitLine(%q, %q) value = %q, want %q", c.line, c.separator, value, c.value)
		}
	}
}

func ptr(s string) *string { return &s }

func TestLineScannerReadsLinesBeyondOneMebibyte(t *testing.T) {
	long := strings.Repeat("x", 3<<20)
	scanner := NewLineScanner(strings.NewReader("short\r\n" + long + "\nlast"))
	var lines []string
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0] != "short" || lines[1] != long || lines[2] != "last" {
		t.Fatalf("got %d lines, first %q", len(lines), lines[0])
	}
}

func TestLineScannerRejectsLinesPastTheLimit(t *testing.T) {
	scanner := NewLineScanner(strings.NewReader(strings.Repeat("x", LineBytesMax+1) + "\n"))
	for scanner.Scan() {
	}
	if !errors.Is(scanner.Err(), bufio.ErrTooLong) {
		t.Fatalf("err = %v, want bufio.ErrTooLong", scanner.Err())
	}
}
