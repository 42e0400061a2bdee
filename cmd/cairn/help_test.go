package main

import (
	"strings"
	"testing"
)

// TestServeHelpSaysTheHTTPAddressServesTheEventStore proves that --http-addr
// is described with everything it serves, the event-store API first.
func TestServeHelpSaysTheHTTPAddressServesTheEventStore(t *testing.T) {
	help := mustCairn(t, "serve", "--help").stdout
	for line := range strings.Lines(help) {
		if strings.Contains(line, "--http-addr") && strings.Contains(line, "/metrics") {
			if !strings.Contains(line, "event-store API") {
				t.Errorf("--http-addr is described without the event-store API: %q", line)
			}
			return
		}
	}
	t.Fatalf("serve --help has no --http-addr flag line:\n%s", help)
}
