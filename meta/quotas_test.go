package meta

import (
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/quota"
)

func alterQuotas(alterations ...*metav1.ClientQuotaAlteration) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_AlterClientQuotas{AlterClientQuotas: &metav1.AlterClientQuotas{Alterations: alterations}}}
}

func alteration(e quota.Entity, set map[string]float64, remove ...string) *metav1.ClientQuotaAlteration {
	return &metav1.ClientQuotaAlteration{Entity: EntityProto(e), Set: set, Remove: remove}
}

func wantQuotas(want ...quota.Quota) func(*testing.T, *Machine, *metav1.Result) {
	return func(t *testing.T, m *Machine, _ *metav1.Result) {
		got := ClientQuotas(m.State()).Quotas()
		if len(got) != len(want) {
			t.Fatalf("quotas %v, want %v", got, want)
		}
		for i := range got {
			if got[i].Entity != want[i].Entity || len(got[i].Values) != len(want[i].Values) {
				t.Fatalf("quotas %v, want %v", got, want)
			}
			for k, v := range want[i].Values {
				if got[i].Values[k] != v {
					t.Fatalf("quotas %v, want %v", got, want)
				}
			}
		}
	}
}

// TestClientQuotaCommands: AlterClientQuotas, accepted and refused, on a
// fixture holding the quota of user alice.
func TestClientQuotaCommands(t *testing.T) {
	alice := quota.Entity{User: quota.NamedPart("alice")}
	defaults := quota.Entity{User: quota.DefaultPart, ClientID: quota.DefaultPart}
	aliceQuota := quota.Quota{Entity: alice, Values: quota.Values{quota.ProducerByteRate: 1000}}
	setup := func(t *testing.T) *Machine {
		m := fixture(t)
		mustApply(t, m, m.AppliedIndex()+1, alterQuotas(alteration(alice, map[string]float64{quota.ProducerByteRate: 1000})))
		return m
	}
	for _, c := range []commandCase{
		{"set a default entity", alterQuotas(alteration(defaults, map[string]float64{quota.ConsumerByteRate: 50})), codeOK,
			wantQuotas(quota.Quota{Entity: defaults, Values: quota.Values{quota.ConsumerByteRate: 50}}, aliceQuota)},
		{"replace a value", alterQuotas(alteration(alice, map[string]float64{quota.ProducerByteRate: 7})), codeOK,
			wantQuotas(quota.Quota{Entity: alice, Values: quota.Values{quota.ProducerByteRate: 7}})},
		{"remove the last value removes the entity", alterQuotas(alteration(alice, nil, quota.ProducerByteRate)), codeOK, wantQuotas()},
		{"an invalid value refuses all", alterQuotas(alteration(defaults, map[string]float64{quota.ConsumerByteRate: 50}),
			alteration(alice, map[string]float64{quota.ControllerMutationRate: 1})), metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG, nil},
		{"an entity named twice", alterQuotas(alteration(alice, nil, quota.ProducerByteRate), alteration(alice, nil)), codeInvalidCommand, nil},
		{"an empty entity", alterQuotas(alteration(quota.Entity{}, map[string]float64{quota.ProducerByteRate: 1})), codeInvalidCommand, nil},
		{"none", alterQuotas(), codeInvalidCommand, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCommandCaseOn(t, setup(t), c)
		})
	}
}

// TestRestoreRefusesBrokenClientQuotas: a state's quotas are checked as a
// whole.
func TestRestoreRefusesBrokenClientQuotas(t *testing.T) {
	m := fixture(t)
	mustApply(t, m, m.AppliedIndex()+1, alterQuotas(
		alteration(quota.Entity{ClientID: quota.NamedPart("a")}, map[string]float64{quota.ProducerByteRate: 1}),
		alteration(quota.Entity{ClientID: quota.NamedPart("b")}, map[string]float64{quota.ProducerByteRate: 1})))
	for name, brk := range map[string]func(st *metav1.State){
		"out of order": func(st *metav1.State) {
			st.ClientQuotas[0], st.ClientQuotas[1] = st.ClientQuotas[1], st.ClientQuotas[0]
		},
		"repeated":    func(st *metav1.State) { st.ClientQuotas[1] = st.ClientQuotas[0] },
		"no value":    func(st *metav1.State) { st.ClientQuotas[0].Values = nil },
		"bad value":   func(st *metav1.State) { st.ClientQuotas[0].Values[quota.ProducerByteRate] = -1 },
		"bad kind":    func(st *metav1.State) { st.ClientQuotas[0].Entity.ClientIdKind = 7 },
		"no entity":   func(st *metav1.State) { st.ClientQuotas[0].Entity = nil },
		"unknown key": func(st *metav1.State) { st.ClientQuotas[0].Values["x"] = 1 },
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
