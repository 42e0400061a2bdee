package main

import "testing"

// parseLSN reads PostgreSQL's X/Y positions as one 64-bit number, the
// upper half first, so that positions compare as the WAL orders them.
func TestParseLSN(t *testing.T) {
	for _, c := range []struct {
		text string
		want uint64
	}{{"0/0", 0}, {"0/192A760", 0x192A760}, {"1/0", 1 << 32}, {"FFFFFFFF/FFFFFFFF", 1<<64 - 1}} {
		got, err := parseLSN(c.text)
		if err != nil || got != c.want {
			t.Errorf("parseLSN(%q) = %#x, %v; want %#x", c.text, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "12", "0/", "x/1", "100000000/0"} {
		if got, err := parseLSN(bad); err == nil {
			t.Errorf("parseLSN(%q) = %#x, want an error", bad, got)
		}
	}
}
