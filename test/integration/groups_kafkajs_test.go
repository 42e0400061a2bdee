package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestKafkajsGroup proves three kafkajs consumers in one group (its
// round-robin assignor) share a six-partition topic: each is given
// partitions, and every message is consumed exactly once.
func TestKafkajsGroup(t *testing.T) {
	node := requireTool(t, "node")
	jsDir, err := filepath.Abs("js")
	if err != nil {
		t.Fatalf("find js dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "kafkajs", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafkajs is not installed in %s (run npm ci there): %v", jsDir, err)
		}
		t.Skipf("kafkajs is not installed in %s; run `npm ci` there to run this test", jsDir)
	}
	server := startCairn(t, "")
	const topic, group, messages = "kafkajs-group", "kafkajs-group", 120
	createTopic(t, server.kafkaAddr, topic, 6, nil)
	produceValues(t, server.kafkaAddr, topic, "j", 0, messages)
	resultFile := filepath.Join(t.TempDir(), "groups.json")
	runTool(t, kafkajsWaitMax, "", []string{
		"CAIRN_BROKER=" + server.kafkaAddr,
		"CAIRN_TOPIC=" + topic,
		"CAIRN_GROUP=" + group,
		"CAIRN_EXPECTED=" + strconv.Itoa(messages),
		"CAIRN_RESULT_FILE=" + resultFile,
	}, node, filepath.Join(jsDir, "groups.js"))

	data, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatalf("read kafkajs result: %v", err)
	}
	var result struct {
		Members []struct {
			Values     []string `json:"values"`
			Partitions []int32  `json:"partitions"`
		} `json:"members"`
	}
	if err := json.Unmarshal(data, &result); err != nil {
		t.Fatalf("decode kafkajs result: %v\n%s", err, data)
	}
	seen := map[string]int{}
	owned := map[int32]int{}
	for i, m := range result.Members {
		if len(m.Partitions) == 0 {
			t.Errorf("kafkajs member %d was given no partitions", i)
		}
		for _, p := range m.Partitions {
			owned[p]++
		}
		for _, v := range m.Values {
			seen[v]++
		}
	}
	if len(owned) != 6 {
		t.Errorf("partitions owned: %v, want each of 6 once", owned)
	}
	for v := range valueSet("j", 0, messages) {
		if seen[v] != 1 {
			t.Errorf("message %q consumed %d times", v, seen[v])
		}
	}
	if len(seen) != messages {
		t.Errorf("consumed %d distinct messages, want %d", len(seen), messages)
	}
}
