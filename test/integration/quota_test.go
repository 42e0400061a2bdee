package integration

import "testing"

// TestCLIQuotas proves cairn quota against the real binary: quotas set on a
// user and on the default client id are listed, still listed after a
// restart (stored in the metadata group), and gone once removed.
func TestCLIQuotas(t *testing.T) {
	server := startCairn(t, "")
	cairnOK(t, server, "", "quota", "set", "--user", "alice", "--producer-byte-rate", "1048576")
	cairnOK(t, server, "", "quota", "set", "--default-client-id", "--consumer-byte-rate", "2048")
	const want = "client-id=<default>\tconsumer_byte_rate=2048\nuser=alice\tproducer_byte_rate=1048576\n"
	if listed := cairnOK(t, server, "", "quota", "list"); listed != want {
		t.Fatalf("quota list printed %q, want %q", listed, want)
	}
	server.Stop()
	server.Restart()
	if listed := cairnOK(t, server, "", "quota", "list"); listed != want {
		t.Fatalf("quota list after a restart printed %q, want %q", listed, want)
	}
	cairnOK(t, server, "", "quota", "remove", "--user", "alice")
	if listed := cairnOK(t, server, "", "quota", "list", "--user", "alice"); listed != "" {
		t.Fatalf("quota list --user alice after remove printed %q", listed)
	}
}
