package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// securityWalkthrough is the heading of docs/security.md's walk-through.
const securityWalkthrough = "## Walk-through: SASL_SSL, SCRAM and ACLs with kcat"

// TestSecurityWalkthroughRunsAsWritten runs the ```sh blocks of the
// walk-through section of docs/security.md under the rules of
// TestReadmeCommandsRunAsWritten, after a `go install ./cmd/cairn` of its
// own (the section assumes cairn installed) and with CAIRN_DATA_DIR unset
// (the section names its data directory, and `user create` with one
// stages the user offline instead of asking the server); its SASL_SSL
// address 127.0.0.1:9093 is rewritten to a free one. The last command must print
// the record alice wrote once granted Write.
func TestSecurityWalkthroughRunsAsWritten(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "curl")
	requireTool(t, "openssl")
	root := moduleRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n"+securityWalkthrough+"\n")
	if !ok {
		t.Fatalf("docs/security.md has no %q section", securityWalkthrough)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	path := filepath.Join(t.TempDir(), "walkthrough.md")
	if err := os.WriteFile(path, []byte(section), 0o600); err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(t, path)
	if len(blocks) < 3 {
		t.Fatalf("the walk-through has %d sh blocks, want at least 3", len(blocks))
	}
	saslSSL := freeAddr(t)
	output := runWalkthrough(t, root, append([][]string{{"go install ./cmd/cairn", "unset CAIRN_DATA_DIR"}}, blocks...), []string{"127.0.0.1:9093", saslSSL})
	if !strings.Contains(output, "\nk1=hello\n") {
		t.Fatalf("the walk-through's last command did not print k1=hello")
	}
}
