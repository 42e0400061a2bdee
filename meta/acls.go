package meta

import (
	"fmt"
	"slices"

	"github.com/cairnlog/cairn/acl"
	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

const (
	// ACLsMax bounds the bindings of the cluster.
	ACLsMax = 100_000
	// ACLsPerCommandMax bounds the bindings one CreateAcls or DeleteAcls names.
	ACLsPerCommandMax = 10_000
)

// BindingOf is the acl.Binding a stored binding holds. Codes out of range
// give values acl.Validate refuses.
func BindingOf(b *metav1.AclBinding) acl.Binding {
	return acl.Binding{
		ResourceType: acl.ResourceType(clampInt8(b.GetResourceType())),
		ResourceName: b.GetResourceName(),
		PatternType:  acl.PatternType(clampInt8(b.GetPatternType())),
		Principal:    b.GetPrincipal(),
		Host:         b.GetHost(),
		Operation:    acl.Operation(clampInt8(b.GetOperation())),
		Permission:   acl.Permission(clampInt8(b.GetPermission())),
	}
}

// clampInt8 maps codes that do not fit Kafka's int8 to 0 (unknown).
func clampInt8(v int32) int8 {
	if v < -128 || v > 127 {
		return 0
	}
	return int8(v)
}

// BindingProto is b as the state stores it.
func BindingProto(b acl.Binding) *metav1.AclBinding {
	return &metav1.AclBinding{
		ResourceType: int32(b.ResourceType), ResourceName: b.ResourceName, PatternType: int32(b.PatternType),
		Principal: b.Principal, Host: b.Host, Operation: int32(b.Operation), Permission: int32(b.Permission),
	}
}

// ACLs returns the bindings of the state, in their stored order.
func ACLs(st *metav1.State) []acl.Binding {
	out := make([]acl.Binding, len(st.GetAcls()))
	for i, b := range st.GetAcls() {
		out[i] = BindingOf(b)
	}
	return out
}

// commandBindings checks a command's bindings: their count, and each valid.
func commandBindings(list []*metav1.AclBinding) ([]acl.Binding, *refusal) {
	if len(list) == 0 || len(list) > ACLsPerCommandMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%d ACLs in one command: want 1 to %d", len(list), ACLsPerCommandMax)
	}
	out := make([]acl.Binding, len(list))
	for i, p := range list {
		b := BindingOf(p)
		if err := acl.Validate(b); err != nil {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%v", err)
		}
		out[i] = b
	}
	return out, nil
}

func (m *Machine) createACLs(cmd *metav1.CreateAcls) (*metav1.Result, *refusal) {
	adding, r := commandBindings(cmd.GetAcls())
	if r != nil {
		return nil, r
	}
	merged := acl.NewSet(append(ACLs(m.state), adding...)).Bindings(acl.MatchAll)
	if len(merged) > ACLsMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "%d ACLs, at most %d", len(merged), ACLsMax)
	}
	m.setACLs(merged)
	return &metav1.Result{}, nil
}

func (m *Machine) deleteACLs(cmd *metav1.DeleteAcls) (*metav1.Result, *refusal) {
	removing, r := commandBindings(cmd.GetAcls())
	if r != nil {
		return nil, r
	}
	kept := slices.DeleteFunc(ACLs(m.state), func(b acl.Binding) bool { return slices.Contains(removing, b) })
	m.setACLs(kept)
	return &metav1.Result{}, nil
}

// setACLs stores bindings, which are sorted and unique.
func (m *Machine) setACLs(bindings []acl.Binding) {
	m.state.Acls = make([]*metav1.AclBinding, len(bindings))
	for i, b := range bindings {
		m.state.Acls[i] = BindingProto(b)
	}
}

// ACLs returns a copy of the bindings.
func (m *Machine) ACLs() []*metav1.AclBinding {
	out := make([]*metav1.AclBinding, len(m.state.Acls))
	for i, b := range m.state.Acls {
		out[i] = proto.CloneOf(b)
	}
	return out
}

// checkACLs reports a state's bindings that are invalid, out of order or
// repeated.
func checkACLs(st *metav1.State) error {
	if len(st.Acls) > ACLsMax {
		return fmt.Errorf("%d ACLs, at most %d", len(st.Acls), ACLsMax)
	}
	var prev acl.Binding
	for i, p := range st.Acls {
		b := BindingOf(p)
		if err := acl.Validate(b); err != nil {
			return err
		}
		if i > 0 && acl.Compare(prev, b) >= 0 {
			return fmt.Errorf("ACLs out of order or repeated at %v", b)
		}
		prev = b
	}
	return nil
}
