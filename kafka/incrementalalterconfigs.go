package kafka

// IncrementalAlterConfigs v0-v1. Operations on one topic's overrides: 0 SET,
// 1 DELETE (back to the default), 2 APPEND and 3 SUBTRACT, the last two only
// for list configs (cleanup.policy), starting from the effective value when
// the topic has no override, as Kafka does. The new overrides are validated
// as a whole and written at once, so a request that fails changes nothing.
// ValidateOnly checks and changes nothing. Taking a topic out of
// cleanup.policy=stream answers POLICY_VIOLATION unless the request also
// SETs cairn.force.leave.stream=true, a confirmation that is not stored.
// An unknown key, a bad value, a
// missing value or a list operation on a non-list key answers INVALID_CONFIG
// with the reason; an unknown operation, a key given twice for one resource,
// a resource named twice, broker configs (read-only: they are the server's
// flags) and other resource types answer INVALID_REQUEST.

import (
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
)

func init() {
	register(kmsg.IncrementalAlterConfigs.Int16(), 0, 1, handleIncrementalAlterConfigs)
}

func handleIncrementalAlterConfigs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	keys := make([]resourceKey, len(req.Resources))
	for i, rr := range req.Resources {
		keys[i] = resourceKey{rr.ResourceType, rr.ResourceName}
	}
	dup := duplicateResources(keys)
	for i, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		if dup[keys[i]] {
			err = refuse(kerr.InvalidRequest, "resource %q appears more than once in the request", rr.ResourceName)
		} else if err = c.configAllowed(acl.OpAlterConfigs, rr.ResourceType, rr.ResourceName); err == nil {
			err = s.alterTopicConfigs(rr, req.ValidateOnly)
		}
		sr.ErrorCode = errorCode(err)
		sr.ErrorMessage = errorMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

func (s *Server) alterTopicConfigs(rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	if err := checkAlterableResource(rr.ResourceType); err != nil {
		return err
	}
	configsAlterMu.Lock()
	defer configsAlterMu.Unlock()
	t, ok := s.cluster.Topic(rr.ResourceName)
	if !ok {
		return refuse(kerr.UnknownTopicOrPartition, "unknown topic %q", rr.ResourceName)
	}
	entries, err := s.cluster.DescribeConfigs(rr.ResourceName)
	if err != nil {
		return err
	}
	effective := make(map[string]string, len(entries))
	for _, e := range entries {
		effective[e.Name] = e.Value
	}
	next, err := applyConfigOps(t.Configs, effective, rr.Configs)
	if err != nil {
		return err
	}
	return s.cluster.SetConfigs(rr.ResourceName, next, validateOnly)
}

// applyConfigOps computes a topic's new overrides from its current ones, the
// effective value of every supported config, and the requested operations.
// It is pure, so every operation is tested without a server.
func applyConfigOps(overrides, effective map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	next := maps.Clone(overrides)
	if next == nil {
		next = map[string]string{}
	}
	named := map[string]bool{}
	for _, op := range ops {
		if named[op.Name] {
			return nil, refuse(kerr.InvalidRequest, "config %q appears more than once in the request", op.Name)
		}
		named[op.Name] = true
		if op.Name == cluster.ForceLeaveStreamConfig {
			// A request-only confirmation, passed on for the cluster to check and drop.
			if op.Op != kmsg.IncrementalAlterConfigOpSet || op.Value == nil {
				return nil, refuse(kerr.InvalidConfig, "config %q is a confirmation: SET it to true", op.Name)
			}
			next[op.Name] = *op.Value
			continue
		}
		current, known := effective[op.Name]
		if !known {
			return nil, refuse(kerr.InvalidConfig, "unknown topic config %q", op.Name)
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, op.Name)
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return nil, refuse(kerr.InvalidConfig, "config %q: SET needs a value", op.Name)
			}
			next[op.Name] = *op.Value
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if topicConfigType(op.Name) != kmsg.ConfigTypeList {
				return nil, refuse(kerr.InvalidConfig, "config %q is not a list, so %s does not apply; use SET", op.Name, op.Op)
			}
			if op.Value == nil {
				return nil, refuse(kerr.InvalidConfig, "config %q: %s needs a value", op.Name, op.Op)
			}
			next[op.Name] = alterList(current, *op.Value, op.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return nil, refuse(kerr.InvalidRequest, "config %q: unknown operation %d", op.Name, int8(op.Op))
		}
	}
	return next, nil
}

// alterList appends the items of change missing from current, or removes
// those present; both values are comma-separated lists.
func alterList(current, change string, add bool) string {
	items := splitList(current)
	for _, item := range splitList(change) {
		i := slices.Index(items, item)
		switch {
		case add && i < 0:
			items = append(items, item)
		case !add && i >= 0:
			items = slices.Delete(items, i, i+1)
		}
	}
	return strings.Join(items, ",")
}

func splitList(value string) []string {
	var out []string
	for _, part := range strings.Split(value, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
