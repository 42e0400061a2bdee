package kafka

// DescribeClientQuotas v0-1: the client quotas (package quota) whose
// entities match every filter component: EXACT a name, DEFAULT the
// <default> entity, ANY any entity of that type; strict leaves out entities
// with types the filter does not name. Entity types are user and
// client-id; another, or one named twice, answers INVALID_REQUEST. Needs
// DescribeConfigs on the cluster when an authorizer is on.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/quota"
)

func init() { register(kmsg.DescribeClientQuotas.Int16(), 0, 1, handleDescribeClientQuotas) }

func handleDescribeClientQuotas(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !c.allowedCluster(acl.OpDescribeConfigs) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}
	}
	f, err := quotaFilter(req.Components, req.Strict)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
		return reply{resp: resp}
	}
	for _, q := range s.cluster.ClientQuotas().Quotas() {
		if !f.matches(q.Entity) {
			continue
		}
		entry := kmsg.NewDescribeClientQuotasResponseEntry()
		entry.Entity = entityComponents(q.Entity)
		for _, key := range []string{quota.ProducerByteRate, quota.ConsumerByteRate, quota.RequestPercentage} {
			if v, ok := q.Values[key]; ok {
				value := kmsg.NewDescribeClientQuotasResponseEntryValue()
				value.Key, value.Value = key, v
				entry.Values = append(entry.Values, value)
			}
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return reply{resp: resp}
}

// quotaMatch is what a filter asks of one part of an entity: nothing (the
// type is not in the filter), a name, the default, or any.
type quotaMatch struct {
	named bool // the filter names this type
	kind  kmsg.QuotasMatchType
	name  string
}

func (m quotaMatch) matches(p quota.Part, strict bool) bool {
	if !m.named {
		return !strict || p.Kind == quota.Absent
	}
	switch m.kind {
	case kmsg.QuotasMatchTypeExact:
		return p.Kind == quota.Named && p.Name == m.name
	case kmsg.QuotasMatchTypeDefault:
		return p.Kind == quota.Default
	default:
		return p.Kind != quota.Absent
	}
}

type quotaEntityFilter struct {
	user, clientID quotaMatch
	strict         bool
}

func (f quotaEntityFilter) matches(e quota.Entity) bool {
	return f.user.matches(e.User, f.strict) && f.clientID.matches(e.ClientID, f.strict)
}

func quotaFilter(components []kmsg.DescribeClientQuotasRequestComponent, strict bool) (quotaEntityFilter, error) {
	f := quotaEntityFilter{strict: strict}
	for _, comp := range components {
		var m *quotaMatch
		switch comp.EntityType {
		case quota.TypeUser:
			m = &f.user
		case quota.TypeClientID:
			m = &f.clientID
		default:
			return f, fmt.Errorf("unknown quota entity type %q", comp.EntityType)
		}
		if m.named {
			return f, fmt.Errorf("quota entity type %s filtered twice", comp.EntityType)
		}
		m.named, m.kind = true, comp.MatchType
		switch comp.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if comp.Match == nil {
				return f, fmt.Errorf("exact match of %s without a name", comp.EntityType)
			}
			m.name = *comp.Match
		case kmsg.QuotasMatchTypeDefault, kmsg.QuotasMatchTypeAny:
		default:
			return f, fmt.Errorf("unknown match type %d", comp.MatchType)
		}
	}
	return f, nil
}

// entityComponents is e as the quota APIs spell it: one component per
// part, a nil name for the default.
func entityComponents(e quota.Entity) []kmsg.DescribeClientQuotasResponseEntryEntity {
	var out []kmsg.DescribeClientQuotasResponseEntryEntity
	for _, p := range []struct {
		typ  string
		part quota.Part
	}{{quota.TypeUser, e.User}, {quota.TypeClientID, e.ClientID}} {
		if p.part.Kind == quota.Absent {
			continue
		}
		comp := kmsg.NewDescribeClientQuotasResponseEntryEntity()
		comp.Type = p.typ
		if p.part.Kind == quota.Named {
			name := p.part.Name
			comp.Name = &name
		}
		out = append(out, comp)
	}
	return out
}
