package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestTopicLifecycle(t *testing.T) {
	_, brokers := startCluster(t)

	created := mustCairn(t, "topic", "create", "orders", "--partitions", "3",
		"--config", "retention.ms=3600000", "--config", "cleanup.policy=compact,delete", "--brokers", brokers)
	if !regexp.MustCompile(`^created topic orders with 3 partitions, id [A-Za-z0-9_-]{22}\n$`).MatchString(created.stdout) {
		t.Errorf("create printed %q", created.stdout)
	}
	mustCairn(t, "topic", "create", "audit", "--replication-factor", "1", "--brokers", brokers)

	list := mustCairn(t, "topic", "list", "--brokers", brokers)
	if list.stdout != "audit\t1\norders\t3\n" {
		t.Errorf("list printed %q", list.stdout)
	}

	described := mustCairn(t, "topic", "describe", "orders", "--brokers", brokers).stdout
	for _, want := range []string{
		"topic:       orders",
		"partitions:  3",
		"PARTITION  LEADER  LEADER-EPOCH  REPLICAS  IN-SYNC  LOG-START-OFFSET  HIGH-WATERMARK",
		"retention.ms    3600000",
		"cleanup.policy  compact,delete",
		"DYNAMIC_TOPIC_CONFIG",
	} {
		if !strings.Contains(described, want) {
			t.Errorf("describe lacks %q:\n%s", want, described)
		}
	}
	if rows := regexp.MustCompile(`(?m)^[0-2]\s+0\s+\d+\s+0\s+0\s+0\s+0$`).FindAllString(described, -1); len(rows) != 3 {
		t.Errorf("want 3 partition rows with offsets 0/0, got %q in:\n%s", rows, described)
	}
	if id := strings.Fields(created.stdout)[7]; !strings.Contains(described, "id:          "+id+"\n") {
		t.Errorf("describe does not show the id create printed:\n%s", described)
	}

	altered := mustCairn(t, "topic", "alter-config", "orders", "--set", "retention.ms=60000",
		"--delete", "cleanup.policy", "--brokers", brokers)
	if altered.stdout != "set retention.ms=60000 on topic orders\ndeleted cleanup.policy from topic orders\n" {
		t.Errorf("alter-config printed %q", altered.stdout)
	}
	described = mustCairn(t, "topic", "describe", "orders", "--brokers", brokers).stdout
	if !regexp.MustCompile(`(?m)^retention.ms\s+60000\s+DYNAMIC_TOPIC_CONFIG$`).MatchString(described) {
		t.Errorf("retention.ms not altered:\n%s", described)
	}
	if strings.Contains(described, "compact") {
		t.Errorf("cleanup.policy not deleted:\n%s", described)
	}

	deleted := mustCairn(t, "topic", "delete", "orders", "audit", "--brokers", brokers)
	if deleted.stdout != "deleted topic orders\ndeleted topic audit\n" {
		t.Errorf("delete printed %q", deleted.stdout)
	}
	if list := mustCairn(t, "topic", "list", "--brokers", brokers); list.stdout != "" {
		t.Errorf("topics left after delete: %q", list.stdout)
	}
}

func TestTopicDescribeShowsOffsetsAfterProducing(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "events", "--brokers", brokers)
	invocation{stdin: strings.NewReader("a\nb\nc\n"), args: []string{"produce", "events", "--brokers", brokers}}.run(t)
	described := mustCairn(t, "topic", "describe", "events", "--brokers", brokers).stdout
	if !regexp.MustCompile(`(?m)^0\s+0\s+\d+\s+0\s+0\s+0\s+3$`).MatchString(described) {
		t.Errorf("want high watermark 3:\n%s", described)
	}
	if !strings.Contains(described, "no non-default configs") {
		t.Errorf("want no configs listed:\n%s", described)
	}
}

func TestTopicBrokerErrorsFailTheCommand(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "orders", "--brokers", brokers)

	cases := []struct {
		args []string
		want error
		text string
	}{
		{[]string{"topic", "create", "orders"}, kerr.TopicAlreadyExists, `create topic "orders": TOPIC_ALREADY_EXISTS`},
		{[]string{"topic", "create", "wide", "--replication-factor", "3"}, kerr.InvalidReplicationFactor, `create topic "wide": INVALID_REPLICATION_FACTOR`},
		{[]string{"topic", "create", "none", "--replication-factor", "0"}, nil, `--replication-factor 0: must be at least 1`},
		{[]string{"topic", "describe", "missing"}, kerr.UnknownTopicOrPartition, `describe topic "missing": UNKNOWN_TOPIC_OR_PARTITION`},
		{[]string{"topic", "alter-config", "missing", "--set", "retention.ms=1"}, kerr.UnknownTopicOrPartition, `alter configs of topic "missing"`},
		{[]string{"topic", "delete", "orders", "missing"}, nil, `delete topic "missing": UNKNOWN_TOPIC_OR_PARTITION`},
	}
	for _, c := range cases {
		result := cairn(t, append(c.args, "--brokers", brokers)...)
		if result.err == nil {
			t.Errorf("%v succeeded", c.args)
			continue
		}
		if c.want != nil && !errors.Is(result.err, c.want) {
			t.Errorf("%v: err %v, want %v in the chain", c.args, result.err, c.want)
		}
		if !strings.Contains(result.err.Error(), c.text) {
			t.Errorf("%v: err %q lacks %q", c.args, result.err, c.text)
		}
	}
	// The delete above still removed the topic that exists.
	if list := mustCairn(t, "topic", "list", "--brokers", brokers); list.stdout != "" {
		t.Errorf("orders survived a partly failed delete: %q", list.stdout)
	}
}

func TestTopicInvalidConfigShowsTheBrokersMessage(t *testing.T) {
	cluster, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "orders", "--brokers", brokers)
	// The fake broker accepts any config value, so answer as a strict
	// broker would: INVALID_CONFIG with a reason.
	cluster.ControlKey(int16(kmsg.IncrementalAlterConfigs), func(request kmsg.Request) (kmsg.Response, error, bool) {
		alter := request.(*kmsg.IncrementalAlterConfigsRequest)
		response := alter.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, resource := range alter.Resources {
			answer := kmsg.NewIncrementalAlterConfigsResponseResource()
			answer.ResourceName, answer.ResourceType = resource.ResourceName, resource.ResourceType
			answer.ErrorCode = kerr.InvalidConfig.Code
			message := "retention.ms: not a number: soon"
			answer.ErrorMessage = &message
			response.Resources = append(response.Resources, answer)
		}
		return response, nil, true
	})
	result := cairn(t, "topic", "alter-config", "orders", "--set", "retention.ms=soon", "--brokers", brokers)
	if !errors.Is(result.err, kerr.InvalidConfig) {
		t.Fatalf("err = %v, want INVALID_CONFIG", result.err)
	}
	if !strings.Contains(result.err.Error(), "(retention.ms: not a number: soon)") {
		t.Errorf("broker message missing: %v", result.err)
	}
}

func TestTopicArgumentsAreCheckedBeforeAnyRequest(t *testing.T) {
	// No broker listens on port 1; each of these must fail before dialing.
	cases := map[string][]string{
		"partitions":       {"topic", "create", "t", "--partitions", "0"},
		"config":           {"topic", "create", "t", "--config", "novalue"},
		"duplicate config": {"topic", "create", "t", "--config", "a=1", "--config", "a=2"},
		"nothing to alter": {"topic", "alter-config", "t"},
		"set and delete":   {"topic", "alter-config", "t", "--set", "a=1", "--delete", "a"},
		"no name":          {"topic", "delete"},
	}
	for name, args := range cases {
		result := cairn(t, append(args, "--brokers", "127.0.0.1:1", "--timeout", "1s")...)
		if result.err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(result.err.Error(), "dial") || strings.Contains(result.err.Error(), "deadline") {
			t.Errorf("%s: reached the network: %v", name, result.err)
		}
	}
}

// TestTopicAlterConfigForceLeaveStream: --force-leave-stream adds the
// request-only confirmation to the same incremental request, and the output
// lists only the configs changed.
func TestTopicAlterConfigForceLeaveStream(t *testing.T) {
	cluster, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "events", "--brokers", brokers)
	var sent []string
	cluster.ControlKey(int16(kmsg.IncrementalAlterConfigs), func(request kmsg.Request) (kmsg.Response, error, bool) {
		alter := request.(*kmsg.IncrementalAlterConfigsRequest)
		response := alter.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, resource := range alter.Resources {
			for _, c := range resource.Configs {
				sent = append(sent, fmt.Sprintf("%s %s=%s", c.Op, c.Name, *c.Value))
			}
			answer := kmsg.NewIncrementalAlterConfigsResponseResource()
			answer.ResourceName, answer.ResourceType = resource.ResourceName, resource.ResourceType
			response.Resources = append(response.Resources, answer)
		}
		return response, nil, true
	})
	altered := mustCairn(t, "topic", "alter-config", "events", "--set", "cleanup.policy=delete",
		"--force-leave-stream", "--brokers", brokers)
	if want := []string{"SET cleanup.policy=delete", "SET cairn.force.leave.stream=true"}; !slices.Equal(sent, want) {
		t.Errorf("request carried %q, want %q", sent, want)
	}
	if altered.stdout != "set cleanup.policy=delete on topic events\n" {
		t.Errorf("alter-config printed %q", altered.stdout)
	}
}
