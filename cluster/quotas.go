package cluster

import (
	"fmt"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/quota"
)

// ClientQuotas is the applied state's client quotas, as of the last state
// this node reconciled. The config is immutable; a change replaces it.
func (c *Cluster) ClientQuotas() *quota.Config {
	if q := c.quotas.Load(); q != nil {
		return q
	}
	return quota.NewConfig(nil)
}

// AlterClientQuotas has the metadata group set and remove quota keys per
// entity, all or none (validated first), and returns once this node
// applied them.
func (c *Cluster) AlterClientQuotas(set map[quota.Entity]quota.Values, remove map[quota.Entity][]string) error {
	if _, err := c.ClientQuotas().Alter(set, remove); err != nil {
		return err
	}
	entities := map[quota.Entity]bool{}
	for e := range set {
		entities[e] = true
	}
	for e := range remove {
		entities[e] = true
	}
	if len(entities) == 0 {
		return nil
	}
	cmd := &metav1.AlterClientQuotas{}
	for e := range entities {
		cmd.Alterations = append(cmd.Alterations, &metav1.ClientQuotaAlteration{Entity: meta.EntityProto(e), Set: set[e], Remove: remove[e]})
	}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_AlterClientQuotas{AlterClientQuotas: cmd}}); err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	return c.reconcile()
}

// updateClientQuotas replaces the config ClientQuotas answers. Callers hold
// mu (reconcileTo), which orders the states.
func (c *Cluster) updateClientQuotas(st *metav1.State) {
	c.quotas.Store(meta.ClientQuotas(st))
}
