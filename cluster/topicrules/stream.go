package topicrules

import (
	"fmt"
	"maps"
	"strings"

	"github.com/cairnlog/cairn/partition"
)

// ForceLeaveStreamConfig is a request-only key: set to "true" beside a
// change that takes a topic out of cleanup.policy=stream, it confirms the
// change. It is never stored.
const ForceLeaveStreamConfig = "cairn.force.leave.stream"

// IsStream reports whether overrides make a topic an event store.
func IsStream(overrides map[string]string) bool {
	return strings.TrimSpace(overrides["cleanup.policy"]) == "stream"
}

// TakeForceLeaveStream removes ForceLeaveStreamConfig from a request's
// configs and reports whether it confirmed leaving the stream policy.
func TakeForceLeaveStream(configs map[string]string) (map[string]string, bool, error) {
	v, ok := configs[ForceLeaveStreamConfig]
	if !ok {
		return configs, false, nil
	}
	if v != "true" {
		return nil, false, fmt.Errorf("%w: %s=%q: the only value is true", ErrInvalidConfig, ForceLeaveStreamConfig, v)
	}
	rest := maps.Clone(configs)
	delete(rest, ForceLeaveStreamConfig)
	return rest, true, nil
}

// CheckLeaveStream refuses, unless forced, a change that makes an event
// store a plain topic: its appends would no longer be checked, retention or
// compaction would remove events, and a request that merely left
// cleanup.policy out (a non-incremental AlterConfigs) would do it silently.
func CheckLeaveStream(name string, current map[string]string, next partition.Config, force bool) error {
	if force || next.Streams || !IsStream(current) {
		return nil
	}
	return fmt.Errorf("%w: topic %s is an event store (cleanup.policy=stream) and this change would make it a plain "+
		"topic (a request that leaves cleanup.policy out resets it to delete): its events would no longer be checked, "+
		"and retention or compaction would remove them. Keep cleanup.policy=stream, or confirm with %s=true "+
		"(cairn topic alter-config --force-leave-stream)", partition.ErrPolicyViolation, name, ForceLeaveStreamConfig)
}
