package kafka

// AlterConfigs v0-v2 (the non-incremental form): the configs given for a
// topic REPLACE all of its overrides, so a config left out returns to its
// default; entries with a null value are left out too. So that leaving a
// key out cannot silently end an event store, a request that takes a topic
// out of cleanup.policy=stream answers POLICY_VIOLATION unless it carries
// cairn.force.leave.stream=true, a confirmation that is not stored.
// ValidateOnly checks and changes nothing. An unknown key or a bad value answers INVALID_CONFIG
// with the reason. Broker configs are read-only (they are the server's
// flags) and answer INVALID_REQUEST, as do other resource types, a resource
// named twice in one request, and a key given twice for one resource.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.AlterConfigs.Int16(), 0, 2, handleAlterConfigs) }

// configsAlterMu serializes topic config changes made through this package:
// an incremental change reads the current overrides and writes a new set, and
// no other alteration may land between the two.
var configsAlterMu sync.Mutex

// checkAlterableResource accepts topics; broker configs come from flags.
func checkAlterableResource(resourceType kmsg.ConfigResourceType) error {
	switch resourceType {
	case kmsg.ConfigResourceTypeTopic:
		return nil
	case kmsg.ConfigResourceTypeBroker:
		return refuse(kerr.InvalidRequest, "broker configs are read-only; set them with flags")
	default:
		return refuse(kerr.InvalidRequest,
			"config resource type %d is not supported: Cairn alters topic (2) configs", resourceType)
	}
}

// resourceKey identifies a config resource within one request.
type resourceKey struct {
	resourceType kmsg.ConfigResourceType
	name         string
}

// duplicateResources reports the resources named more than once.
func duplicateResources(keys []resourceKey) map[resourceKey]bool {
	seen := make(map[resourceKey]bool, len(keys))
	dup := map[resourceKey]bool{}
	for _, k := range keys {
		if seen[k] {
			dup[k] = true
		}
		seen[k] = true
	}
	return dup
}

func handleAlterConfigs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	keys := make([]resourceKey, len(req.Resources))
	for i, rr := range req.Resources {
		keys[i] = resourceKey{rr.ResourceType, rr.ResourceName}
	}
	dup := duplicateResources(keys)
	for i, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		if dup[keys[i]] {
			err = refuse(kerr.InvalidRequest, "resource %q appears more than once in the request", rr.ResourceName)
		} else if err = c.configAllowed(acl.OpAlterConfigs, rr.ResourceType, rr.ResourceName); err == nil {
			err = s.replaceTopicConfigs(rr, req.ValidateOnly)
		}
		sr.ErrorCode = errorCode(err)
		sr.ErrorMessage = errorMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

func (s *Server) replaceTopicConfigs(rr kmsg.AlterConfigsRequestResource, validateOnly bool) error {
	if err := checkAlterableResource(rr.ResourceType); err != nil {
		return err
	}
	configs := map[string]string{}
	named := map[string]bool{}
	for _, c := range rr.Configs {
		if named[c.Name] {
			return refuse(kerr.InvalidRequest, "config %q appears more than once for %q", c.Name, rr.ResourceName)
		}
		named[c.Name] = true
		if c.Value != nil {
			configs[c.Name] = *c.Value
		}
	}
	configsAlterMu.Lock()
	defer configsAlterMu.Unlock()
	if _, ok := s.cluster.Topic(rr.ResourceName); !ok {
		return refuse(kerr.UnknownTopicOrPartition, "unknown topic %q", rr.ResourceName)
	}
	return s.cluster.SetConfigs(rr.ResourceName, configs, validateOnly)
}
