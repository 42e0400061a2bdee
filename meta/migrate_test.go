package meta

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// Files as a single node writes them (cluster/cluster.go), topics out of
// name order as a hand-edited file might have them.
const (
	legacyClusterJSON = `{"version":1,"cluster_id":"c-legacy","next_producer_id":3000}`
	legacyTopicsJSON  = `{
  "version": 1,
  "topics": [
    {"name": "orders", "id": "AAAAAAAAAAAAAAAAAAAAAQ", "partitions": 3, "configs": {"retention.ms": "1000"}},
    {"name": "__consumer_offsets", "id": "AAAAAAAAAAAAAAAAAAAAAg", "partitions": 2, "configs": {"cleanup.policy": "compact"}},
    {"name": "events", "id": "AAAAAAAAAAAAAAAAAAAAAw", "partitions": 1, "configs": {"cleanup.policy": "stream"}}
  ]
}`
)

var legacySelf = &metav1.Broker{NodeId: 1, KafkaAddr: "127.0.0.1:9092"}

// TestMigrateLegacy: the cluster id, topic ids and configs are kept; the
// node is the only broker, active at incarnation 1, holding every
// partition; group ids follow topics by name and partitions in order;
// producer ids continue after the reserved block.
func TestMigrateLegacy(t *testing.T) {
	st, err := MigrateLegacy([]byte(legacyClusterJSON), []byte(legacyTopicsJSON), legacySelf, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.ClusterId != "c-legacy" || st.NextProducerId != 3000 || st.NextGroupId != 7 || st.AppliedIndex != 1 {
		t.Fatalf("state %v", st)
	}
	if len(st.Brokers) != 1 || st.Brokers[0].NodeId != 1 || st.Brokers[0].Incarnation != 1 || st.Brokers[0].State != active ||
		st.Brokers[0].KafkaAddr != "127.0.0.1:9092" {
		t.Fatalf("brokers %v", st.Brokers)
	}
	want := []struct {
		name   string
		idByte byte
		groups []uint64
		config string
	}{
		{"__consumer_offsets", 2, []uint64{1, 2}, "compact"},
		{"events", 3, []uint64{3}, "stream"},
		{"orders", 1, []uint64{4, 5, 6}, ""},
	}
	for i, w := range want {
		tp := st.Topics[i]
		var groups []uint64
		for _, p := range tp.Partitions {
			groups = append(groups, p.GroupId)
			if !slices.Equal(p.Replicas, []uint64{r1}) || p.PreferredLeader != r1 {
				t.Fatalf("%s-%d replicas %v", tp.Name, p.Index, p.Replicas)
			}
		}
		if tp.Name != w.name || !bytes.Equal(tp.Id, topicID(w.idByte)) || !slices.Equal(groups, w.groups) || tp.Configs["cleanup.policy"] != w.config {
			t.Fatalf("topic %d: %v, want %+v", i, tp, w)
		}
	}
	if st.Topics[2].Configs["retention.ms"] != "1000" {
		t.Fatalf("orders configs %v", st.Topics[2].Configs)
	}
}

// TestMigrateLegacyIsDeterministic: the same files give the same bytes,
// whatever the order of topics in topics.json, so a migration redone after
// a crash gives the state the first attempt gave.
func TestMigrateLegacyIsDeterministic(t *testing.T) {
	reordered := strings.Replace(legacyTopicsJSON, `"topics": [`, `"topics": [
    {"name": "b", "id": "AAAAAAAAAAAAAAAAAAAABA", "partitions": 1},`, 1)
	other := strings.Replace(legacyTopicsJSON, `"topics": [`, `"topics": [`, 1)
	other = strings.Replace(other, `}
  ]`, `},
    {"name": "b", "id": "AAAAAAAAAAAAAAAAAAAABA", "partitions": 1}
  ]`, 1)
	snap := func(topics string) []byte {
		st, err := MigrateLegacy([]byte(legacyClusterJSON), []byte(topics), legacySelf, 1)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(st)
		if err != nil {
			t.Fatal(err)
		}
		return snapshot(t, m)
	}
	if !bytes.Equal(snap(reordered), snap(other)) {
		t.Fatal("topic order in topics.json changed the migrated state")
	}
}

// TestMigrateLegacyContinues: the migrated state is a machine's state like
// any other: new topics take the next group ids and producer ids continue
// after the legacy block. A node without topics.json has no topics.
func TestMigrateLegacyContinues(t *testing.T) {
	st, err := MigrateLegacy([]byte(legacyClusterJSON), []byte(legacyTopicsJSON), legacySelf, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	if res := applyNext(t, m, createTopic("new", topicID(9), nil, []uint64{r1})); !slices.Equal(res.GroupIds, []uint64{7}) {
		t.Fatalf("new topic groups %v", res.GroupIds)
	}
	if res := applyNext(t, m, allocate(1, ProducerIDBlock)); res.FirstProducerId != 3000 {
		t.Fatalf("first producer id %d", res.FirstProducerId)
	}
	empty, err := MigrateLegacy([]byte(legacyClusterJSON), nil, legacySelf, 1)
	if err != nil || len(empty.Topics) != 0 || empty.NextGroupId != 1 {
		t.Fatalf("without topics.json: %v %v", empty, err)
	}
}

// TestMigrateLegacyRefusals: files that today's node would refuse to start
// with are refused, with no state.
func TestMigrateLegacyRefusals(t *testing.T) {
	topics := func(entry string) string { return `{"version":1,"topics":[` + entry + `]}` }
	cases := map[string][2]string{
		"cluster.json not JSON":  {`{`, legacyTopicsJSON},
		"cluster.json version 2": {`{"version":2,"cluster_id":"c"}`, legacyTopicsJSON},
		"no cluster id":          {`{"version":1}`, legacyTopicsJSON},
		"negative producer id":   {`{"version":1,"cluster_id":"c","next_producer_id":-1}`, legacyTopicsJSON},
		"topics.json version 0":  {legacyClusterJSON, `{"topics":[]}`},
		"topics.json not JSON":   {legacyClusterJSON, `[`},
		"bad topic id":           {legacyClusterJSON, topics(`{"name":"a","id":"short","partitions":1}`)},
		"no partitions":          {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":0}`)},
		"invalid config":         {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":1,"configs":{"x":"1"}}`)},
		"invalid name":           {legacyClusterJSON, topics(`{"name":"a b","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":1}`)},
		"a name twice":           {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":1},{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAg","partitions":1}`)},
		"an id twice":            {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":1},{"name":"b","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":1}`)},
		"an all-zero topic id":   {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAA","partitions":1}`)},
		"too many partitions":    {legacyClusterJSON, topics(`{"name":"a","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":10001}`)},
	}
	for name, files := range cases {
		if st, err := MigrateLegacy([]byte(files[0]), []byte(files[1]), legacySelf, 1); err == nil || st != nil {
			t.Errorf("%s: migrated to %v", name, st)
		}
	}
	if _, err := MigrateLegacy([]byte(legacyClusterJSON), nil, &metav1.Broker{NodeId: 0}, 1); err == nil {
		t.Error("node id 0 migrated")
	}
}
