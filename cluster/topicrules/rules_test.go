package topicrules

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestDefaultsAgree: every documented default, set explicitly, gives the same
// partition config as no override at all.
func TestDefaultsAgree(t *testing.T) {
	explicit, err := PartitionConfig(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := PartitionConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(explicit, implicit) {
		t.Fatalf("defaults disagree:\nexplicit %+v\nimplicit %+v", explicit, implicit)
	}
}

// TestConfigValidation: accepted values pass, and every refusal wraps
// ErrInvalidConfig.
func TestConfigValidation(t *testing.T) {
	cases := []struct {
		configs map[string]string
		ok      bool
	}{
		{map[string]string{"cleanup.policy": "compact"}, true},
		{map[string]string{"cleanup.policy": "compact,delete"}, true},
		{map[string]string{"cleanup.policy": "shred"}, false},
		{map[string]string{"retention.ms": "-1"}, true},
		{map[string]string{"retention.ms": "-2"}, false},
		{map[string]string{"retention.ms": "soon"}, false},
		{map[string]string{"message.timestamp.type": "LogAppendTime"}, true},
		{map[string]string{"compression.type": "gzip"}, false},
		{map[string]string{"no.such.key": "1"}, false},
		{map[string]string{"max.message.bytes": "10"}, false},
	}
	for _, c := range cases {
		_, err := PartitionConfig(c.configs)
		if (err == nil) != c.ok {
			t.Errorf("%v: err %v, want ok=%v", c.configs, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v: error %v does not wrap ErrInvalidConfig", c.configs, err)
		}
	}
}

// TestTopicNames: Kafka's name rules, refusals wrapping ErrInvalidTopic.
func TestTopicNames(t *testing.T) {
	for _, ok := range []string{"orders", "a.b_c-D9", strings.Repeat("x", 249)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", 250)} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// TestLeaveStream: leaving the stream policy needs the force key, whose
// only value is true and which never stays among the configs.
func TestLeaveStream(t *testing.T) {
	current := map[string]string{"cleanup.policy": "stream"}
	plain, err := PartitionConfig(map[string]string{"cleanup.policy": "delete"})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckLeaveStream("s", current, plain, false); err == nil {
		t.Fatal("left the stream policy without force")
	}
	if err := CheckLeaveStream("s", current, plain, true); err != nil {
		t.Fatalf("forced leave refused: %v", err)
	}
	rest, force, err := TakeForceLeaveStream(map[string]string{ForceLeaveStreamConfig: "true", "retention.ms": "1"})
	if err != nil || !force || len(rest) != 1 {
		t.Fatalf("take force: %v %v %v", rest, force, err)
	}
	if _, _, err := TakeForceLeaveStream(map[string]string{ForceLeaveStreamConfig: "yes"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("force=yes: %v", err)
	}
}
