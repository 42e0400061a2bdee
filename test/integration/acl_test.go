package integration

import (
	"strings"
	"testing"
)

// TestCLIACLs proves --authorizer and cairn acl against the real binary:
// with --allow-everyone-if-no-acl-found the anonymous client may do what no
// ACL names (create a topic, produce, add ACLs); a DENY of Write on the
// topic then refuses its produce with TOPIC_AUTHORIZATION_FAILED; the ACL
// is listed after a restart (stored in the metadata group), and once
// removed the produce is allowed again.
func TestCLIACLs(t *testing.T) {
	server := startCairn(t, "", "--authorizer", "--allow-everyone-if-no-acl-found", "--super-users", "User:admin")
	const topic = "acl-orders"
	cairnOK(t, server, "", "topic", "create", topic)
	cairnOK(t, server, "one\n", "produce", topic)

	added := cairnOK(t, server, "", "acl", "add", "--principal", "User:ANONYMOUS", "--operation", "Write", "--topic", topic, "--deny")
	if added != "added\tTopic\tLiteral\t"+topic+"\tUser:ANONYMOUS\t*\tWrite\tDeny\n" {
		t.Errorf("acl add printed %q", added)
	}
	refused := runCairnCLI(t, server, "two\n", "produce", topic)
	if refused.exitCode == 0 || !strings.Contains(refused.stderr, "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("produce denied Write: exit %d, stderr %q; want a failure naming TOPIC_AUTHORIZATION_FAILED", refused.exitCode, refused.stderr)
	}

	server.Stop()
	server.Restart()
	listed := cairnOK(t, server, "", "acl", "list", "--topic", topic)
	if listed != "Topic\tLiteral\t"+topic+"\tUser:ANONYMOUS\t*\tWrite\tDeny\n" {
		t.Fatalf("acl list after a restart printed %q", listed)
	}
	cairnOK(t, server, "", "acl", "remove", "--topic", topic, "--deny")
	cairnOK(t, server, "three\n", "produce", topic)
}
