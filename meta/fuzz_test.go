package meta

import (
	"bytes"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzRestore: any bytes either restore to a state that passes CheckState
// and survives a snapshot round trip byte for byte, or are refused with the
// machine's state unchanged.
func FuzzRestore(f *testing.F) {
	seed, err := newFixture()
	if err != nil {
		f.Fatal(err)
	}
	good, err := seed.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fixture(t)
		before := snapshot(t, m)
		if err := m.Restore(data); err != nil {
			if !bytes.Equal(before, snapshot(t, m)) {
				t.Fatalf("a refused restore changed the state: %v", err)
			}
			return
		}
		if err := CheckState(m.state); err != nil {
			t.Fatalf("restored a state that fails its check: %v", err)
		}
		once := snapshot(t, m)
		again := fixture(t)
		if err := again.Restore(once); err != nil {
			t.Fatalf("a snapshot of a restored state does not restore: %v", err)
		}
		if !bytes.Equal(once, snapshot(t, again)) {
			t.Fatal("snapshot round trip changed the bytes")
		}
	})
}

// FuzzApplyCommand: any bytes that decode as a command apply to two equal
// machines with equal results and byte-identical states that keep every
// invariant; a refusal changes nothing but the applied index.
func FuzzApplyCommand(f *testing.F) {
	for _, c := range []*metav1.Command{
		createTopic("logs", topicID(3), map[string]string{"retention.ms": "1"}, []uint64{r1, r2}),
		createPartitions("orders", nil, []uint64{r3, r1, r2}),
		begin(ref("orders", 0), r2, r3),
		complete(ref("orders", 2), fixtureReassignment),
		preferred(ref("orders", 1), r1),
		register(4, 1, "n4:1"),
		brokerState(4, 1, active),
		allocate(2, 5),
		setConfigs("events", nil, true),
		deleteTopic("orders", topicID(1)),
		upsert("alice", scramCredential("SCRAM-SHA-256", 4096, 1)),
		deleteCredential("alice", "SCRAM-SHA-256"),
	} {
		data, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := DecodeCommand(data)
		if err != nil {
			return
		}
		a, b := fixture(t), fixture(t)
		before := a.State()
		index := before.AppliedIndex + 1
		resA, resB := a.Apply(index, cmd), b.Apply(index, proto.CloneOf(cmd))
		if !proto.Equal(resA, resB) || !bytes.Equal(snapshot(t, a), snapshot(t, b)) {
			t.Fatalf("one command, two outcomes: %v / %v", resA, resB)
		}
		if err := CheckState(a.state); err != nil {
			t.Fatalf("%v gave %v and broke the state: %v", cmd, resA, err)
		}
		if resA.Code != codeOK && !unchangedBut(before, a.State()) {
			t.Fatalf("refused %v (%v) yet changed the state", cmd, resA)
		}
	})
}
