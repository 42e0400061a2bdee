package tlsconf

import (
	"os"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/testcerts"
)

func serialOf(t *testing.T, k *Keypair) int64 {
	t.Helper()
	c := k.Certificate()
	if c.Leaf == nil {
		t.Fatal("certificate without its parsed leaf")
	}
	return c.Leaf.SerialNumber.Int64()
}

// TestKeypairReload: new files are read at the first look a second after
// the last one; a broken pair keeps the previous one, and the repaired
// pair is taken at the next look.
func TestKeypairReload(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "reload")
	ca.Issue(t, dir, "node", testcerts.Options{Server: true, Serial: 1})
	clock := env.NewManualClock(time.Unix(1_000_000, 0))
	k, err := NewKeypair(dir+"/node.pem", dir+"/node-key.pem", clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := serialOf(t, k); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	ca.Issue(t, dir, "node", testcerts.Options{Server: true, Serial: 2})
	if got := serialOf(t, k); got != 1 {
		t.Fatalf("serial %d before the check interval passed, want still 1", got)
	}
	clock.Advance(ReloadCheckInterval)
	if got := serialOf(t, k); got != 2 {
		t.Fatalf("serial %d after the interval, want 2", got)
	}

	// A certificate whose key is another pair's does not load.
	other := ca.Issue(t, dir, "other", testcerts.Options{Server: true, Serial: 3})
	keyPEM, err := os.ReadFile(other.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/node-key.pem", keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(ReloadCheckInterval)
	if got := serialOf(t, k); got != 2 {
		t.Fatalf("serial %d after a broken pair, want the previous 2", got)
	}
	ca.Issue(t, dir, "node", testcerts.Options{Server: true, Serial: 4})
	clock.Advance(ReloadCheckInterval)
	if got := serialOf(t, k); got != 4 {
		t.Fatalf("serial %d after the repair, want 4", got)
	}
	// Files gone: the pair in memory serves on.
	if err := os.Remove(dir + "/node.pem"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(ReloadCheckInterval)
	if got := serialOf(t, k); got != 4 {
		t.Fatalf("serial %d with the files gone, want 4", got)
	}
}

func TestFilesValidate(t *testing.T) {
	for _, tc := range []struct {
		f  Files
		ok bool
	}{
		{Files{}, true},
		{Files{CertFile: "c", KeyFile: "k"}, true},
		{Files{CertFile: "c"}, false},
		{Files{CertFile: "c", KeyFile: "k", ClientAuth: ClientAuthRequired}, false},
		{Files{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: ClientAuthRequested}, true},
		{Files{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: "maybe"}, false},
		{Files{ClientCAFile: "ca"}, false},
	} {
		if err := tc.f.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate = %v, want ok %v", tc.f, err, tc.ok)
		}
	}
}
