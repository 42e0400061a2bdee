package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestUserCreateStagesInTheDataDir: user create --data-dir stages a
// credential (the password from CAIRN_PASSWORD) that the node's next Open
// applies; a missing password, an unknown mechanism and a bad iteration
// count are refused before anything is written.
func TestUserCreateStagesInTheDataDir(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "create", "admin", "--data-dir", dir}, "--password is required"},
		{[]string{"user", "create", "admin", "--password", "p", "--mechanism", "SCRAM-SHA-1", "--data-dir", dir}, "--mechanism"},
		{[]string{"user", "create", "admin", "--password", "p", "--iterations", "100", "--data-dir", dir}, "iterations 100"},
	} {
		if res := cairn(t, tc.args...); res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
			t.Errorf("cairn %s: %v, want an error saying %q", strings.Join(tc.args, " "), res.err, tc.want)
		}
	}
	res := invocation{env: map[string]string{"CAIRN_PASSWORD": "from-env"},
		args: []string{"user", "create", "admin", "--mechanism", "scram-sha-256", "--iterations", "8192", "--data-dir", dir}}.run(t)
	if res.err != nil || !strings.Contains(res.stdout, "staged user admin (SCRAM-SHA-256)") {
		t.Fatalf("user create --data-dir: %v, %q", res.err, res.stdout)
	}
	e := env.Real()
	e.FS, e.Logger = vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cluster.Open(e, cluster.DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, ok := c.ScramCredential("admin", sasl.ScramSHA256)
	if !ok || cred.Iterations != 8192 || !cred.Verify("from-env") {
		t.Fatalf("staged credential after Open: %+v %v", cred, ok)
	}
}
