package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue reads an unlabelled sample from a /metrics body, -1 when it
// is missing.
func metricValue(body, name string) float64 {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestClusterMetricsAndHealth: on three servers with an RF 3 topic the
// nodes' /metrics count each partition led once, name the same metadata
// leader, count Raft messages sent and received and elections won, and
// expose the other replication figures; every /healthz is 200. The last server
// running, its two peers closed, answers 503 naming the missing metadata
// leader.
func TestClusterMetricsAndHealth(t *testing.T) {
	tc := startCluster(t)
	servers := []*Server{tc.servers[1], tc.servers[2], tc.servers[3]}
	const partitions = 3
	if _, err := servers[0].Cluster().CreateTopicReplicated("m", partitions, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	scrape := func(i int) string {
		_, body := get(t, "http://"+servers[i].HTTPAddr()+"/metrics")
		return body
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		leaders, metaLeaders := 0.0, map[float64]bool{}
		for i := range servers {
			body := scrape(i)
			leaders += metricValue(body, "cairn_cluster_leaders")
			metaLeaders[metricValue(body, "cairn_cluster_meta_leader")] = true
		}
		if leaders == partitions && len(metaLeaders) == 1 && !metaLeaders[-1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes count %v leaders of %d partitions, meta leaders %v", leaders, partitions, metaLeaders)
		}
		time.Sleep(10 * time.Millisecond) // polling three nodes' elections
	}
	for i, s := range servers {
		if code, body := get(t, "http://"+s.HTTPAddr()+"/healthz"); code != 200 || body != "ok\n" {
			t.Fatalf("node %d: healthz %d %q", i+1, code, body)
		}
		body := scrape(i)
		for _, name := range []string{"cairn_transport_raft_messages_sent_total", "cairn_transport_raft_messages_received_total"} {
			if v := metricValue(body, name); v <= 0 {
				t.Fatalf("node %d: %s %v", i+1, name, v)
			}
		}
		for _, name := range []string{"cairn_cluster_partitions_under_replicated", "cairn_cluster_replicas_not_caught_up",
			"cairn_cluster_raft_groups_quiesced", "cairn_cluster_elections_started_total", "cairn_transport_raft_messages_dropped_total",
			"cairn_cluster_commit_seconds_count"} {
			if v := metricValue(body, name); v < 0 {
				t.Fatalf("node %d: no %s", i+1, name)
			}
		}
	}
	won := 0.0
	for i := range servers {
		won += metricValue(scrape(i), "cairn_cluster_elections_won_total")
	}
	if won < partitions {
		t.Fatalf("nodes count %v elections won for %d partitions", won, partitions)
	}

	tc.stop(2)
	tc.stop(3)
	for {
		code, body := get(t, "http://"+servers[0].HTTPAddr()+"/healthz")
		if code == 503 {
			if !strings.Contains(body, "not serving") || !strings.Contains(body, "no leader") {
				t.Fatalf("healthz alone: %q", body)
			}
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("healthz alone: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond) // the election timeout must pass first
	}
}
