package kafka

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func describeConfigsRequest(version int16, resourceType kmsg.ConfigResourceType, name string, configNames ...string) *kmsg.DescribeConfigsRequest {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = version
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = resourceType, name, configNames
	req.Resources = append(req.Resources, rr)
	return req
}

func configsByName(configs []kmsg.DescribeConfigsResponseResourceConfig) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range configs {
		out[c.Name] = c
	}
	return out
}

// TestDescribeConfigsVersions proves each served version (lowest, both sides
// of the flexible switch at v4, and v1 where Source replaces IsDefault)
// reports every topic config with its effective value, and the fields that
// version carries: IsDefault in v0, Source in v1+, type in v3+.
func TestDescribeConfigsVersions(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "described", 1, map[string]string{"retention.ms": "1000"})
	all, err := ts.cluster.DescribeConfigs("described")
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []int16{0, 1, 3, 4} {
		resp := ts.dial(t).roundTrip(describeConfigsRequest(version, kmsg.ConfigResourceTypeTopic, "described")).(*kmsg.DescribeConfigsResponse)
		res := resp.Resources[0]
		if res.ErrorCode != 0 || res.ResourceName != "described" || len(res.Configs) != len(all) {
			t.Fatalf("v%d: %s, %d configs, want %d", version, codeOf(res.ErrorCode), len(res.Configs), len(all))
		}
		got := configsByName(res.Configs)
		override, deflt := got["retention.ms"], got["cleanup.policy"]
		if override.Value == nil || *override.Value != "1000" || deflt.Value == nil || *deflt.Value != "delete" {
			t.Fatalf("v%d: retention.ms %v, cleanup.policy %v", version, override.Value, deflt.Value)
		}
		if version == 0 && (override.IsDefault || !deflt.IsDefault) {
			t.Errorf("v0: IsDefault %v for the override, %v for the default", override.IsDefault, deflt.IsDefault)
		}
		if version >= 1 && (override.Source != kmsg.ConfigSourceDynamicTopicConfig || deflt.Source != kmsg.ConfigSourceDefaultConfig) {
			t.Errorf("v%d: sources %v and %v", version, override.Source, deflt.Source)
		}
		if version >= 3 && (override.ConfigType != kmsg.ConfigTypeLong || deflt.ConfigType != kmsg.ConfigTypeList) {
			t.Errorf("v%d: types %v and %v", version, override.ConfigType, deflt.ConfigType)
		}
		if override.ReadOnly || override.IsSensitive {
			t.Errorf("v%d: topic config read-only %v, sensitive %v", version, override.ReadOnly, override.IsSensitive)
		}
	}
}

// TestDescribeConfigsFilterSynonymsDocs proves ConfigNames limits the
// answer, synonyms list the override before the broker default, and
// documentation is sent only when asked.
func TestDescribeConfigsFilterSynonymsDocs(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "filtered", 1, map[string]string{"retention.ms": "1000"})
	req := describeConfigsRequest(4, kmsg.ConfigResourceTypeTopic, "filtered", "retention.ms", "no.such.key")
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	res := ts.dial(t).roundTrip(req).(*kmsg.DescribeConfigsResponse).Resources[0]
	if len(res.Configs) != 1 {
		t.Fatalf("%d configs for a filter naming one known key", len(res.Configs))
	}
	c := res.Configs[0]
	if c.Documentation == nil || *c.Documentation == "" {
		t.Error("no documentation although asked")
	}
	if len(c.ConfigSynonyms) != 2 ||
		c.ConfigSynonyms[0].Name != "retention.ms" || c.ConfigSynonyms[0].Source != kmsg.ConfigSourceDynamicTopicConfig ||
		c.ConfigSynonyms[1].Name != "log.retention.ms" || c.ConfigSynonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("synonyms %+v", c.ConfigSynonyms)
	}
	plain := ts.dial(t).roundTrip(describeConfigsRequest(4, kmsg.ConfigResourceTypeTopic, "filtered", "cleanup.policy")).(*kmsg.DescribeConfigsResponse)
	if c := plain.Resources[0].Configs[0]; c.Documentation != nil || len(c.ConfigSynonyms) != 0 {
		t.Errorf("documentation %v and synonyms %v sent unasked", c.Documentation, c.ConfigSynonyms)
	}
}

// TestDescribeConfigsBroker proves this broker, by id or by the empty name,
// answers a read-only list that includes the server's flags, and that other
// brokers, unknown topics and other resource types are refused.
func TestDescribeConfigsBroker(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.AutoCreateTopics, c.DefaultPartitions = false, 6 })
	rc := ts.dial(t)
	for _, name := range []string{"", "0"} {
		res := rc.roundTrip(describeConfigsRequest(1, kmsg.ConfigResourceTypeBroker, name)).(*kmsg.DescribeConfigsResponse).Resources[0]
		got := configsByName(res.Configs)
		checks := map[string]string{"auto.create.topics.enable": "false", "num.partitions": "6", "message.max.bytes": "1048588", "log.retention.ms": "604800000"}
		for key, want := range checks {
			if c, ok := got[key]; !ok || c.Value == nil || *c.Value != want || !c.ReadOnly {
				t.Errorf("broker %q: %s = %v (present %v, read-only %v), want %s", name, key, c.Value, ok, c.ReadOnly, want)
			}
		}
		if got["num.partitions"].Source != kmsg.ConfigSourceStaticBrokerConfig || got["message.max.bytes"].Source != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("broker %q: sources %v (flag) and %v (fixed)", name, got["num.partitions"].Source, got["message.max.bytes"].Source)
		}
	}
	refusals := []struct {
		resourceType kmsg.ConfigResourceType
		name         string
		want         *kerr.Error
	}{
		{kmsg.ConfigResourceTypeBroker, "7", kerr.InvalidRequest},
		{kmsg.ConfigResourceTypeBrokerLogger, "0", kerr.InvalidRequest},
		{kmsg.ConfigResourceTypeTopic, "missing", kerr.UnknownTopicOrPartition},
	}
	for _, r := range refusals {
		res := rc.roundTrip(describeConfigsRequest(4, r.resourceType, r.name)).(*kmsg.DescribeConfigsResponse).Resources[0]
		if res.ErrorCode != r.want.Code || res.ErrorMessage == nil || res.Configs != nil {
			t.Errorf("type %d %q: %s (%v), %d configs; want %s", r.resourceType, r.name, codeOf(res.ErrorCode), res.ErrorMessage, len(res.Configs), r.want.Message)
		}
	}
}

// TestTopicConfigKindsCoverCluster proves every topic config the cluster
// supports has a declared wire type, and that every broker default named as
// a topic config's synonym equals the cluster's default for that config.
func TestTopicConfigKindsCoverCluster(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "defaults", 1, nil)
	entries, err := ts.cluster.DescribeConfigs("defaults")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		kind, ok := topicConfigKinds[e.Name]
		if !ok {
			t.Errorf("topic config %q has no entry in topicConfigKinds", e.Name)
			continue
		}
		if kind.brokerName == "" {
			continue
		}
		b, ok := ts.brokerConfig(kind.brokerName)
		if !ok {
			t.Errorf("topic config %q names broker config %q, which is not reported", e.Name, kind.brokerName)
		} else if b.value != e.Value {
			t.Errorf("broker %s = %q but topic default %s = %q", b.name, b.value, e.Name, e.Value)
		}
	}
	if len(topicConfigKinds) != len(entries) {
		t.Errorf("topicConfigKinds has %d keys, the cluster %d", len(topicConfigKinds), len(entries))
	}
}

// TestDescribeConfigsWithKadm proves franz-go's admin client reads topic and
// broker configs.
func TestDescribeConfigsWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	adminCreate(t, ts, "inspected", 1, map[string]string{"cleanup.policy": "compact"})
	topics, err := adm.DescribeTopicConfigs(ctx, "inspected")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := topics.On("inspected", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("%v %v", err, rc.Err)
	}
	found := false
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			found = c.MaybeValue() == "compact" && c.Source == kmsg.ConfigSourceDynamicTopicConfig
		}
	}
	if !found {
		t.Errorf("cleanup.policy=compact not reported as a topic override in %+v", rc.Configs)
	}
	brokers, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	broker, err := brokers.On(strconv.Itoa(0), nil)
	if err != nil || broker.Err != nil || len(broker.Configs) == 0 {
		t.Fatalf("broker 0: %v %v, %d configs", err, broker.Err, len(broker.Configs))
	}
	cluster, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil || len(cluster) != 1 || cluster[0].Err != nil {
		t.Fatalf("cluster-wide broker configs: %v %+v", err, cluster)
	}
}
