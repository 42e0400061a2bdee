package cluster

import (
	"fmt"

	"github.com/cairnlog/cairn/acl"
	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
)

// ACLs is the applied state's access control lists, as of the last state
// this node reconciled: every node of a cluster applies the same ones. The
// set is immutable; a change replaces it.
func (c *Cluster) ACLs() *acl.Set { return c.acls.Load() }

// CreateACLs has the metadata group add bindings (validated first: one
// invalid binding refuses them all) and returns once this node applied them.
func (c *Cluster) CreateACLs(bindings []acl.Binding) error {
	if len(bindings) == 0 {
		return nil
	}
	cmd := &metav1.CreateAcls{Acls: make([]*metav1.AclBinding, len(bindings))}
	for i, b := range bindings {
		if err := acl.Validate(b); err != nil {
			return err
		}
		cmd.Acls[i] = meta.BindingProto(b)
	}
	c.aclMu.Lock()
	defer c.aclMu.Unlock()
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_CreateAcls{CreateAcls: cmd}}); err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	return c.reconcile()
}

// DeleteACLs removes the bindings each filter matches and returns them, per
// filter. The filters are resolved against the state this node applied,
// and the bindings found are proposed for deletion: aclMu makes this node's
// deletions take turns, so two of them never report one binding twice.
func (c *Cluster) DeleteACLs(filters []acl.Filter) ([][]acl.Binding, error) {
	c.aclMu.Lock()
	defer c.aclMu.Unlock()
	set := c.ACLs()
	matched := make([][]acl.Binding, len(filters))
	var all []acl.Binding
	for i, f := range filters {
		matched[i] = set.Bindings(f)
		all = append(all, matched[i]...)
	}
	if len(all) == 0 {
		return matched, nil
	}
	all = acl.NewSet(all).Bindings(acl.MatchAll) // once each
	cmd := &metav1.DeleteAcls{Acls: make([]*metav1.AclBinding, len(all))}
	for i, b := range all {
		cmd.Acls[i] = meta.BindingProto(b)
	}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_DeleteAcls{DeleteAcls: cmd}}); err != nil {
		return nil, fmt.Errorf("delete ACLs: %w", err)
	}
	return matched, c.reconcile()
}

// updateACLs replaces the set ACLs answers when st's bindings differ.
// Callers hold mu (reconcileTo), which orders the states.
func (c *Cluster) updateACLs(st *metav1.State) {
	bindings := meta.ACLs(st)
	if old := c.acls.Load(); old != nil && equalBindings(old.Bindings(acl.MatchAll), bindings) {
		return
	}
	c.acls.Store(acl.NewSet(bindings))
}

func equalBindings(a, b []acl.Binding) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
