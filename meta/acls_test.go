package meta

import (
	"slices"
	"testing"

	"github.com/cairnlog/cairn/acl"
	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

func aclBinding(principal string, op acl.Operation, name string) acl.Binding {
	return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: principal, Host: acl.Wildcard, Operation: op, Permission: acl.PermissionAllow}
}

func createACLs(bindings ...acl.Binding) *metav1.Command {
	c := &metav1.CreateAcls{}
	for _, b := range bindings {
		c.Acls = append(c.Acls, BindingProto(b))
	}
	return &metav1.Command{Command: &metav1.Command_CreateAcls{CreateAcls: c}}
}

func deleteACLs(bindings ...acl.Binding) *metav1.Command {
	c := &metav1.DeleteAcls{}
	for _, b := range bindings {
		c.Acls = append(c.Acls, BindingProto(b))
	}
	return &metav1.Command{Command: &metav1.Command_DeleteAcls{DeleteAcls: c}}
}

func wantACLs(want ...acl.Binding) func(*testing.T, *Machine, *metav1.Result) {
	return func(t *testing.T, m *Machine, _ *metav1.Result) {
		got := ACLs(m.State())
		slices.SortFunc(want, acl.Compare)
		if !slices.Equal(got, want) {
			t.Fatalf("ACLs %v, want %v", got, want)
		}
	}
}

// TestACLCommands: CreateAcls and DeleteAcls, accepted and refused, on a
// fixture holding two bindings.
func TestACLCommands(t *testing.T) {
	bobWrite := aclBinding("User:bob", acl.OpWrite, "orders")
	aliceRead := aclBinding("User:alice", acl.OpRead, "orders")
	carolAll := aclBinding("User:carol", acl.OpAll, "payments")
	bad := aliceRead
	bad.Host = "localhost"
	setup := func(t *testing.T) *Machine {
		m := fixture(t)
		mustApply(t, m, m.AppliedIndex()+1, createACLs(bobWrite, aliceRead))
		return m
	}
	for _, c := range []commandCase{
		{"create adds in order", createACLs(carolAll), codeOK, wantACLs(bobWrite, aliceRead, carolAll)},
		{"create again changes nothing", createACLs(bobWrite, bobWrite), codeOK, wantACLs(bobWrite, aliceRead)},
		{"create refuses an invalid binding, and the rest with it", createACLs(carolAll, bad), codeInvalidCommand, nil},
		{"create of none", createACLs(), codeInvalidCommand, nil},
		{"delete removes the listed", deleteACLs(bobWrite, carolAll), codeOK, wantACLs(aliceRead)},
		{"delete all", deleteACLs(bobWrite, aliceRead), codeOK, wantACLs()},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCommandCaseOn(t, setup(t), c)
		})
	}
}

// TestRestoreRefusesBrokenACLs: a state's bindings are checked as a whole.
func TestRestoreRefusesBrokenACLs(t *testing.T) {
	m := fixture(t)
	mustApply(t, m, m.AppliedIndex()+1, createACLs(aclBinding("User:a", acl.OpRead, "x"), aclBinding("User:b", acl.OpRead, "x")))
	for name, brk := range map[string]func(st *metav1.State){
		"out of order": func(st *metav1.State) { st.Acls[0], st.Acls[1] = st.Acls[1], st.Acls[0] },
		"repeated":     func(st *metav1.State) { st.Acls[1] = st.Acls[0] },
		"invalid":      func(st *metav1.State) { st.Acls[0].Operation = 99 },
	} {
		st := m.State()
		brk(st)
		data, err := marshalOptions.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Restore(data); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}
