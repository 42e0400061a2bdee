package kafka

// AlterClientQuotas v0-1: sets and removes client quota keys per entity
// (user, client-id, or both; a null name is <default>). The valid entries
// of a request go to the metadata group in one command; each invalid one
// answers INVALID_REQUEST with the reason (an unknown entity type, one
// named twice, an unknown key, a value not positive). validate_only checks
// and changes nothing. Needs AlterConfigs on the cluster when an authorizer
// is on.
//
// Deviation from Kafka: controller_mutation_rate, and ip entities
// (connection-rate quotas), are refused as not supported (INVALID_REQUEST);
// the other three keys are enforced.

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/quota"
)

func init() { register(kmsg.AlterClientQuotas.Int16(), 0, 1, handleAlterClientQuotas) }

func handleAlterClientQuotas(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	allowed := c.allowedCluster(acl.OpAlterConfigs)
	set := map[quota.Entity]quota.Values{}
	remove := map[quota.Entity][]string{}
	var at []int // the result of each valid entry
	for _, entry := range req.Entries {
		result := kmsg.NewAlterClientQuotasResponseEntry()
		for _, comp := range entry.Entity {
			rc := kmsg.NewAlterClientQuotasResponseEntryEntity()
			rc.Type, rc.Name = comp.Type, comp.Name
			result.Entity = append(result.Entity, rc)
		}
		resp.Entries = append(resp.Entries, result)
		if !allowed {
			resp.Entries[len(resp.Entries)-1].ErrorCode = kerr.ClusterAuthorizationFailed.Code
			continue
		}
		e, values, removing, err := quotaAlteration(entry)
		if err == nil {
			if _, dup := set[e]; dup {
				err = fmt.Errorf("quota entity %v altered twice", e)
			}
		}
		if err != nil {
			resp.Entries[len(resp.Entries)-1].ErrorCode = kerr.InvalidRequest.Code
			resp.Entries[len(resp.Entries)-1].ErrorMessage = errorMessage(err)
			continue
		}
		set[e], remove[e] = values, removing
		at = append(at, len(resp.Entries)-1)
	}
	if len(at) == 0 || req.ValidateOnly {
		return reply{resp: resp}
	}
	if err := s.cluster.AlterClientQuotas(set, remove); err != nil {
		c.logger.Warn("altering client quotas", "err", err)
		for _, i := range at {
			resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = errorCode(err), errorMessage(err)
		}
	}
	return reply{resp: resp}
}

// quotaAlteration reads one entry: its entity, the values it sets and the
// keys it removes, each checked.
func quotaAlteration(entry kmsg.AlterClientQuotasRequestEntry) (quota.Entity, quota.Values, []string, error) {
	var e quota.Entity
	for _, comp := range entry.Entity {
		var p *quota.Part
		switch comp.Type {
		case quota.TypeUser:
			p = &e.User
		case quota.TypeClientID:
			p = &e.ClientID
		default:
			return e, nil, nil, fmt.Errorf("unknown quota entity type %q", comp.Type)
		}
		if p.Kind != quota.Absent {
			return e, nil, nil, fmt.Errorf("quota entity type %s named twice", comp.Type)
		}
		*p = quota.DefaultPart
		if comp.Name != nil {
			*p = quota.NamedPart(*comp.Name)
		}
	}
	if err := quota.ValidateEntity(e); err != nil {
		return e, nil, nil, err
	}
	values := quota.Values{}
	var removing []string
	for _, op := range entry.Ops {
		if _, dup := values[op.Key]; dup || slices.Contains(removing, op.Key) {
			return e, nil, nil, fmt.Errorf("quota key %s altered twice", op.Key)
		}
		if op.Remove {
			if err := quota.ValidateValue(op.Key, 1); err != nil {
				return e, nil, nil, err
			}
			removing = append(removing, op.Key)
			continue
		}
		if err := quota.ValidateValue(op.Key, op.Value); err != nil {
			return e, nil, nil, err
		}
		values[op.Key] = op.Value
	}
	return e, values, removing, nil
}
