package kafka

import (
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func configOp(name string, op kmsg.IncrementalAlterConfigOp, value *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = name, op, value
	return c
}

// TestApplyConfigOps proves each operation's effect on the overrides, that
// list operations start from the effective value, and which mistakes are
// refused with which code.
func TestApplyConfigOps(t *testing.T) {
	const (
		set      = kmsg.IncrementalAlterConfigOpSet
		del      = kmsg.IncrementalAlterConfigOpDelete
		add      = kmsg.IncrementalAlterConfigOpAppend
		subtract = kmsg.IncrementalAlterConfigOpSubtract
	)
	v := kmsg.StringPtr
	effective := map[string]string{"cleanup.policy": "delete", "retention.ms": "1000", "segment.ms": "604800000"}
	overrides := map[string]string{"retention.ms": "1000"}
	cases := []struct {
		name string
		ops  []kmsg.IncrementalAlterConfigsRequestResourceConfig
		want map[string]string
		code *kerr.Error
	}{
		{"set adds an override", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("segment.ms", set, v("10"))},
			map[string]string{"retention.ms": "1000", "segment.ms": "10"}, nil},
		{"set replaces an override", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("retention.ms", set, v("5"))},
			map[string]string{"retention.ms": "5"}, nil},
		{"delete removes an override", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("retention.ms", del, nil)},
			map[string]string{}, nil},
		{"delete of a default is a no-op", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("segment.ms", del, nil)},
			map[string]string{"retention.ms": "1000"}, nil},
		{"append starts from the default", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("cleanup.policy", add, v("compact"))},
			map[string]string{"retention.ms": "1000", "cleanup.policy": "delete,compact"}, nil},
		{"append skips present items", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("cleanup.policy", add, v("delete"))},
			map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"}, nil},
		{"subtract removes an item", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("cleanup.policy", subtract, v("delete"))},
			map[string]string{"retention.ms": "1000", "cleanup.policy": ""}, nil},
		{"several operations apply together", []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			configOp("retention.ms", del, nil), configOp("segment.ms", set, v("7"))},
			map[string]string{"segment.ms": "7"}, nil},
		{"unknown key", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("colour", set, v("blue"))}, nil, kerr.InvalidConfig},
		{"set without a value", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("retention.ms", set, nil)}, nil, kerr.InvalidConfig},
		{"append to a non-list", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("retention.ms", add, v("1"))}, nil, kerr.InvalidConfig},
		{"append without a value", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("cleanup.policy", add, nil)}, nil, kerr.InvalidConfig},
		{"unknown operation", []kmsg.IncrementalAlterConfigsRequestResourceConfig{configOp("retention.ms", 9, v("1"))}, nil, kerr.InvalidRequest},
		{"key given twice", []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			configOp("retention.ms", set, v("1")), configOp("retention.ms", del, nil)}, nil, kerr.InvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := applyConfigOps(overrides, effective, tc.ops)
			if tc.code != nil {
				if errorCode(err) != tc.code.Code || errorMessage(err) == nil {
					t.Fatalf("error %v, want %s", err, tc.code.Message)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("overrides %v (err %v), want %v", got, err, tc.want)
			}
			if overrides["retention.ms"] != "1000" || len(overrides) != 1 {
				t.Fatalf("the current overrides were modified: %v", overrides)
			}
		})
	}
}

func incrementalRequest(version int16, validateOnly bool, resourceType kmsg.ConfigResourceType, name string, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) *kmsg.IncrementalAlterConfigsRequest {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version, req.ValidateOnly = version, validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.Configs = resourceType, name, ops
	req.Resources = append(req.Resources, rr)
	return req
}

// TestIncrementalAlterConfigsVersions proves both served versions (v0, and
// v1, the flexible one) apply operations to the topic, that a request with
// one bad operation changes nothing, and that validate-only and broker
// resources change nothing.
func TestIncrementalAlterConfigsVersions(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "tuned", 1, map[string]string{"retention.ms": "1000"})
	rc := ts.dial(t)
	topic := kmsg.ConfigResourceTypeTopic
	steps := []struct {
		req  *kmsg.IncrementalAlterConfigsRequest
		code int16
		want map[string]string
	}{
		{incrementalRequest(0, false, topic, "tuned", configOp("segment.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("60000"))),
			0, map[string]string{"retention.ms": "1000", "segment.ms": "60000"}},
		{incrementalRequest(1, false, topic, "tuned", configOp("retention.ms", kmsg.IncrementalAlterConfigOpDelete, nil)),
			0, map[string]string{"segment.ms": "60000"}},
		{incrementalRequest(1, false, topic, "tuned",
			configOp("retention.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("5")),
			configOp("segment.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("never"))),
			kerr.InvalidConfig.Code, map[string]string{"segment.ms": "60000"}},
		{incrementalRequest(1, true, topic, "tuned", configOp("segment.ms", kmsg.IncrementalAlterConfigOpDelete, nil)),
			0, map[string]string{"segment.ms": "60000"}},
		{incrementalRequest(1, false, kmsg.ConfigResourceTypeBroker, "0", configOp("num.partitions", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("2"))),
			kerr.InvalidRequest.Code, map[string]string{"segment.ms": "60000"}},
		{incrementalRequest(0, false, topic, "missing", configOp("segment.ms", kmsg.IncrementalAlterConfigOpDelete, nil)),
			kerr.UnknownTopicOrPartition.Code, map[string]string{"segment.ms": "60000"}},
	}
	for i, step := range steps {
		res := rc.roundTrip(step.req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0]
		if res.ErrorCode != step.code || (step.code != 0) != (res.ErrorMessage != nil) {
			t.Errorf("step %d: %s (%v), want %s", i, codeOf(res.ErrorCode), res.ErrorMessage, codeOf(step.code))
		}
		if got, _ := ts.cluster.Topic("tuned"); !maps.Equal(got.Configs, step.want) {
			t.Errorf("step %d: overrides %v, want %v", i, got.Configs, step.want)
		}
	}
}

// TestAlterTopicConfigsWithKadm proves franz-go's incremental alteration sets,
// deletes and appends, and that DescribeTopicConfigs then reports the result.
func TestAlterTopicConfigsWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	adminCreate(t, ts, "altered", 1, map[string]string{"retention.ms": "1000"})
	alter := []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.ms", Value: kmsg.StringPtr("60000")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")},
	}
	if _, err := adm.ValidateAlterTopicConfigs(ctx, alter, "altered"); err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.cluster.Topic("altered"); len(got.Configs) != 1 {
		t.Fatalf("validate-only changed the overrides to %v", got.Configs)
	}
	resps, err := adm.AlterTopicConfigs(ctx, alter, "altered")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := resps.On("altered", nil); err != nil || r.Err != nil {
		t.Fatalf("%v %v %s", err, r.Err, r.ErrMessage)
	}
	described, err := adm.DescribeTopicConfigs(ctx, "altered")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := described.On("altered", nil)
	got := map[string]string{}
	for _, c := range rc.Configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			got[c.Key] = c.MaybeValue()
		}
	}
	if want := map[string]string{"segment.ms": "60000", "cleanup.policy": "delete,compact"}; !maps.Equal(got, want) {
		t.Errorf("overrides described as %v, want %v", got, want)
	}
}
