package kafka

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func alterConfigsResource(resourceType kmsg.ConfigResourceType, name string, configs map[string]*string) kmsg.AlterConfigsRequestResource {
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = resourceType, name
	for k, v := range configs {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, v
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func alterConfigsRequest(version int16, validateOnly bool, resources ...kmsg.AlterConfigsRequestResource) *kmsg.AlterConfigsRequest {
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version, req.ValidateOnly, req.Resources = version, validateOnly, resources
	return req
}

// TestAlterConfigsVersions proves each served version (lowest, both sides of
// the flexible switch at v2) replaces all of a topic's overrides: keys left
// out or given a null value return to their defaults.
func TestAlterConfigsVersions(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{0, 1, 2} {
		name := fmt.Sprintf("replaced-v%d", version)
		adminCreate(t, ts, name, 1, map[string]string{"retention.ms": "1000", "segment.ms": "5000", "retention.bytes": "100"})
		rr := alterConfigsResource(kmsg.ConfigResourceTypeTopic, name,
			map[string]*string{"retention.ms": kmsg.StringPtr("2000"), "cleanup.policy": kmsg.StringPtr("compact"), "segment.ms": nil})
		resp := ts.dial(t).roundTrip(alterConfigsRequest(version, false, rr)).(*kmsg.AlterConfigsResponse)
		if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 || resp.Resources[0].ResourceName != name {
			t.Fatalf("v%d: response %+v", version, resp.Resources)
		}
		topic, _ := ts.cluster.Topic(name)
		want := map[string]string{"retention.ms": "2000", "cleanup.policy": "compact"}
		if !maps.Equal(topic.Configs, want) {
			t.Errorf("v%d: overrides %v, want %v", version, topic.Configs, want)
		}
	}
}

// TestAlterConfigsRefusals proves refused resources get their Kafka error
// codes with a message, change nothing, and do not stop the other resources
// of the request; and that validate-only changes nothing.
func TestAlterConfigsRefusals(t *testing.T) {
	ts := startServer(t)
	before := map[string]string{"retention.ms": "1000"}
	adminCreate(t, ts, "stable", 1, before)
	topic := kmsg.ConfigResourceTypeTopic
	set := func(k, v string) map[string]*string { return map[string]*string{k: kmsg.StringPtr(v)} }
	cases := []struct {
		name         string
		resource     kmsg.AlterConfigsRequestResource
		validateOnly bool
		want         *kerr.Error // nil: accepted
		hint         string
	}{
		{"bad value", alterConfigsResource(topic, "stable", set("retention.ms", "forever")), false, kerr.InvalidConfig, "retention.ms"},
		{"unknown key", alterConfigsResource(topic, "stable", set("colour", "blue")), false, kerr.InvalidConfig, "colour"},
		{"unknown topic", alterConfigsResource(topic, "missing", set("retention.ms", "5")), false, kerr.UnknownTopicOrPartition, "missing"},
		{"broker", alterConfigsResource(kmsg.ConfigResourceTypeBroker, "0", set("num.partitions", "3")), false, kerr.InvalidRequest, "read-only"},
		{"broker logger", alterConfigsResource(kmsg.ConfigResourceTypeBrokerLogger, "0", nil), false, kerr.InvalidRequest, "not supported"},
		{"validate only", alterConfigsResource(topic, "stable", set("retention.ms", "9")), true, nil, ""},
	}
	rc := ts.dial(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := rc.roundTrip(alterConfigsRequest(2, tc.validateOnly, tc.resource)).(*kmsg.AlterConfigsResponse).Resources[0]
			if tc.want == nil && res.ErrorCode != 0 {
				t.Errorf("%s (%v), want success", codeOf(res.ErrorCode), res.ErrorMessage)
			}
			if tc.want != nil && (res.ErrorCode != tc.want.Code || res.ErrorMessage == nil || !strings.Contains(*res.ErrorMessage, tc.hint)) {
				t.Errorf("%s (%v), want %s mentioning %q", codeOf(res.ErrorCode), res.ErrorMessage, tc.want.Message, tc.hint)
			}
			if got, _ := ts.cluster.Topic("stable"); !maps.Equal(got.Configs, before) {
				t.Errorf("overrides changed to %v", got.Configs)
			}
		})
	}
	adminCreate(t, ts, "other", 1, nil)
	dup := alterConfigsRequest(0, false,
		alterConfigsResource(topic, "stable", nil), alterConfigsResource(topic, "other", set("retention.ms", "7")), alterConfigsResource(topic, "stable", nil))
	codes := []int16{kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code}
	for i, res := range rc.roundTrip(dup).(*kmsg.AlterConfigsResponse).Resources {
		if res.ErrorCode != codes[i] {
			t.Errorf("resource %d (%s): %s, want %s", i, res.ResourceName, codeOf(res.ErrorCode), codeOf(codes[i]))
		}
	}
	if got, _ := ts.cluster.Topic("other"); got.Configs["retention.ms"] != "7" {
		t.Errorf("the valid resource beside duplicates was not altered: %v", got.Configs)
	}
	twice := alterConfigsResource(topic, "stable", set("retention.ms", "8"))
	twice.Configs = append(twice.Configs, twice.Configs[0])
	if res := rc.roundTrip(alterConfigsRequest(1, false, twice)).(*kmsg.AlterConfigsResponse).Resources[0]; res.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("a key given twice: %s, want INVALID_REQUEST", codeOf(res.ErrorCode))
	}
}

// TestAlterConfigsStateWithKadm proves franz-go's non-incremental
// alteration replaces the overrides, as AlterConfigs specifies.
func TestAlterConfigsStateWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	adminCreate(t, ts, "stateful", 1, map[string]string{"retention.ms": "1000"})
	resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kmsg.StringPtr("60000")}}, "stateful")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := resps.On("stateful", nil); err != nil || r.Err != nil {
		t.Fatalf("%v %v %s", err, r.Err, r.ErrMessage)
	}
	topic, _ := ts.cluster.Topic("stateful")
	if want := map[string]string{"segment.ms": "60000"}; !maps.Equal(topic.Configs, want) {
		t.Errorf("overrides %v, want %v", topic.Configs, want)
	}
	resps, err = adm.AlterBrokerConfigsState(ctx, []kadm.AlterConfig{{Name: "num.partitions", Value: kmsg.StringPtr("3")}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.On("0", nil); r.Err != kerr.InvalidRequest {
		t.Errorf("altering broker configs: %v, want INVALID_REQUEST", r.Err)
	}
}
