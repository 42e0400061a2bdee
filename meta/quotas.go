package meta

import (
	"fmt"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/quota"
)

// QuotaAlterationsMax bounds the entities one AlterClientQuotas names.
const QuotaAlterationsMax = 1_000

// EntityOf is the quota.Entity a stored entity holds. Kinds out of range
// give entities quota.ValidateEntity refuses.
func EntityOf(e *metav1.ClientQuotaEntity) quota.Entity {
	return quota.Entity{
		User:     quota.Part{Kind: quotaKind(e.GetUserKind()), Name: e.GetUser()},
		ClientID: quota.Part{Kind: quotaKind(e.GetClientIdKind()), Name: e.GetClientId()},
	}
}

func quotaKind(k uint32) quota.Kind {
	if k > uint32(quota.Named) {
		return quota.Named + 1 // invalid
	}
	return quota.Kind(k)
}

// EntityProto is e as the state stores it.
func EntityProto(e quota.Entity) *metav1.ClientQuotaEntity {
	return &metav1.ClientQuotaEntity{UserKind: uint32(e.User.Kind), User: e.User.Name,
		ClientIdKind: uint32(e.ClientID.Kind), ClientId: e.ClientID.Name}
}

// ClientQuotas is the quotas of the state.
func ClientQuotas(st *metav1.State) *quota.Config {
	list := make([]quota.Quota, len(st.GetClientQuotas()))
	for i, q := range st.GetClientQuotas() {
		list[i] = quota.Quota{Entity: EntityOf(q.GetEntity()), Values: q.GetValues()}
	}
	return quota.NewConfig(list)
}

func (m *Machine) alterClientQuotas(cmd *metav1.AlterClientQuotas) (*metav1.Result, *refusal) {
	list := cmd.GetAlterations()
	if len(list) == 0 || len(list) > QuotaAlterationsMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%d quota entities in one command: want 1 to %d", len(list), QuotaAlterationsMax)
	}
	set := map[quota.Entity]quota.Values{}
	remove := map[quota.Entity][]string{}
	for _, a := range list {
		e := EntityOf(a.GetEntity())
		if err := quota.ValidateEntity(e); err != nil {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%v", err)
		}
		if _, dup := set[e]; dup {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "quota entity %v named twice", e)
		}
		set[e] = a.GetSet()
		remove[e] = a.GetRemove()
	}
	next, err := ClientQuotas(m.state).Alter(set, remove)
	if err != nil {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG, "%v", err)
	}
	m.setClientQuotas(next)
	return &metav1.Result{}, nil
}

// setClientQuotas stores c, in Compare order.
func (m *Machine) setClientQuotas(c *quota.Config) {
	list := c.Quotas()
	m.state.ClientQuotas = make([]*metav1.ClientQuota, len(list))
	for i, q := range list {
		m.state.ClientQuotas[i] = &metav1.ClientQuota{Entity: EntityProto(q.Entity), Values: q.Values}
	}
}

// checkClientQuotas reports a state's quotas that are invalid, out of
// order, repeated or empty.
func checkClientQuotas(st *metav1.State) error {
	if len(st.ClientQuotas) > quota.EntitiesMax {
		return fmt.Errorf("%d quota entities, at most %d", len(st.ClientQuotas), quota.EntitiesMax)
	}
	var prev quota.Entity
	for i, q := range st.ClientQuotas {
		e := EntityOf(q.GetEntity())
		if err := quota.ValidateEntity(e); err != nil {
			return err
		}
		if i > 0 && quota.Compare(prev, e) >= 0 {
			return fmt.Errorf("client quotas out of order or repeated at %v", e)
		}
		if len(q.Values) == 0 {
			return fmt.Errorf("client quota %v has no value", e)
		}
		for k, v := range q.Values {
			if err := quota.ValidateValue(k, v); err != nil {
				return fmt.Errorf("client quota %v: %w", e, err)
			}
		}
		prev = e
	}
	return nil
}
