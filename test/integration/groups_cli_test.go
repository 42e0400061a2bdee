package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCLIGroups proves the cairn group commands against the real server: a
// franz-go member consumes part of a topic and commits; describe shows the
// member, its host and assignment, and per-partition committed offset, log
// end and lag; reset-offsets and delete are refused while it lives, and
// work once it has left; list shows the group's state.
func TestCLIGroups(t *testing.T) {
	server := startCairn(t, "")
	const topic, group = "cli-groups", "cli-group"
	createTopic(t, server.kafkaAddr, topic, 1, nil)
	produceValues(t, server.kafkaAddr, topic, "g", 0, 10)
	member := startGroupMember(t, server.kafkaAddr, group, topic, kgo.DisableAutoCommit())
	waitConsumed(t, valueSet("g", 0, 10), member)
	if err := member.client.CommitUncommittedOffsets(testContext(t)); err != nil {
		t.Fatal(err)
	}
	produceValues(t, server.kafkaAddr, topic, "g", 10, 4)

	described := cairnOK(t, server, "", "group", "describe", group)
	for _, want := range []string{"state:     Stable", "/127.0.0.1", "cli-groups:0"} {
		if !strings.Contains(described, want) {
			t.Errorf("describe lacks %q:\n%s", want, described)
		}
	}
	if !regexp.MustCompile(`(?m)^cli-groups\s+0\s+10\s+14\s+4\s+\S+$`).MatchString(described) {
		t.Errorf("describe lacks committed 10, log end 14, lag 4:\n%s", described)
	}
	if r := runCairnCLI(t, server, "", "group", "reset-offsets", group, "--topic", topic, "--to-earliest"); r.exitCode == 0 || !strings.Contains(r.stderr, "live members") {
		t.Errorf("reset with a live member: exit %d, stderr %q", r.exitCode, r.stderr)
	}
	if r := runCairnCLI(t, server, "", "group", "delete", group); r.exitCode == 0 || !strings.Contains(r.stderr, "NON_EMPTY_GROUP") {
		t.Errorf("delete with a live member: exit %d, stderr %q", r.exitCode, r.stderr)
	}

	waitConsumed(t, valueSet("g", 0, 14), member)
	member.close()
	if list := cairnOK(t, server, "", "group", "list"); list != group+"\tEmpty\tconsumer\n" {
		t.Errorf("list printed %q", list)
	}
	reset := cairnOK(t, server, "", "group", "reset-offsets", group, "--topic", topic, "--to-offset", "3")
	// Leaving, the member committed what it had consumed since: all 14.
	if !regexp.MustCompile(`(?m)^cli-groups\s+0\s+14\s+3$`).MatchString(reset) {
		t.Errorf("reset printed:\n%s", reset)
	}
	if !regexp.MustCompile(`(?m)^cli-groups\s+0\s+3\s+14\s+11\s+-$`).MatchString(cairnOK(t, server, "", "group", "describe", group)) {
		t.Error("describe after reset does not show committed offset 3 and lag 11")
	}
	if deleted := cairnOK(t, server, "", "group", "delete", group); deleted != "deleted group "+group+"\n" {
		t.Errorf("delete printed %q", deleted)
	}
}
