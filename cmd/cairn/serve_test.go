package main

import (
	"strings"
	"testing"
)

// TestServeClusterFlagsRefusedClearly: a malformed --peers, or a node id
// that is not among the peers, stops serve before it binds anything, with
// an error naming the problem; CAIRN_PEERS stands in for the flag.
func TestServeClusterFlagsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		inv  invocation
		want string
	}{
		{"peer without id", invocation{args: []string{"serve", "--data-dir", dir, "--peers", "127.0.0.1:9093"}}, "want ID=HOST:PORT"},
		{"peer id 0", invocation{args: []string{"serve", "--data-dir", dir, "--peers", "0=127.0.0.1:9093"}}, "between 1 and"},
		{"peer listed twice", invocation{args: []string{"serve", "--data-dir", dir, "--peers", "1=127.0.0.1:1,1=127.0.0.1:2"}}, "listed twice"},
		{"node not a peer", invocation{args: []string{"serve", "--data-dir", dir, "--node-id", "4", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"}}, "not among the peers"},
		{"raft addr alone", invocation{args: []string{"serve", "--data-dir", dir, "--raft-addr", "127.0.0.1:9093"}}, "without peers"},
		{"peers from the environment", invocation{env: map[string]string{"CAIRN_PEERS": "x"}, args: []string{"serve", "--data-dir", dir}}, "want ID=HOST:PORT"},
		{"negative sync workers", invocation{args: []string{"serve", "--data-dir", dir, "--sync-workers", "-1"}}, "sync workers -1: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.inv.run(t)
			if res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", res.err, tc.want)
			}
		})
	}
}

// TestServeHelpNamesTheClusterFlags: serve --help says what each cluster
// flag is for.
func TestServeHelpNamesTheClusterFlags(t *testing.T) {
	help := mustCairn(t, "serve", "--help").stdout
	for _, flag := range []string{"--node-id", "--raft-addr", "--peers", "--advertise-kafka", "--advertise-http", "--rack", "--raft-tick", "--raft-election-ticks"} {
		if !strings.Contains(help, "      "+flag+" ") {
			t.Errorf("serve --help lacks %s:\n%s", flag, help)
		}
	}
}
