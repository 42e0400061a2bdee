package meta

import (
	"fmt"
	"maps"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

func registerWithListeners(node int32, listeners map[string]string) *metav1.Command {
	c := register(node, 0, "n:1")
	c.GetRegisterBroker().Listeners = listeners
	return c
}

// TestRegisterBrokerListeners: a broker's named listeners are stored as
// registered and replaced by its next registration; too many, an empty
// name or an address that is not HOST:PORT are refused, and a state read
// back with them fails CheckState.
func TestRegisterBrokerListeners(t *testing.T) {
	m := fixture(t)
	first := map[string]string{"LOCAL": "127.0.0.1:9092", "EXTERNAL": "kafka6.example.com:9093"}
	res := applyNext(t, m, registerWithListeners(6, first))
	if b := brokerOf(t, m, 6); !maps.Equal(b.Listeners, first) {
		t.Fatalf("listeners %v, want %v", b.Listeners, first)
	}
	again := registerWithListeners(6, map[string]string{"LOCAL": "127.0.0.1:9092"})
	again.GetRegisterBroker().Incarnation = res.Incarnation
	applyNext(t, m, again)
	if b := brokerOf(t, m, 6); len(b.Listeners) != 1 {
		t.Fatalf("listeners after a new registration %v", b.Listeners)
	}
	if err := CheckState(m.State()); err != nil {
		t.Fatal(err)
	}

	many := map[string]string{}
	for i := range ListenersMax + 1 {
		many[fmt.Sprintf("L%d", i)] = "h:1"
	}
	for _, bad := range []map[string]string{many, {"": "h:1"}, {"L": "no-port"}} {
		if res := applyNextRefused(t, m, registerWithListeners(7, bad)); res.Code != codeInvalidCommand {
			t.Fatalf("listeners %v: %s", bad, res.Code)
		}
	}
	st := m.State()
	for _, b := range st.Brokers {
		if b.NodeId == 6 {
			b.Listeners["BAD"] = "no-port"
		}
	}
	if err := CheckState(st); err == nil {
		t.Fatal("a listener without a port passed CheckState")
	}
}
