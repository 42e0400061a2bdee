package meta

import (
	"bytes"
	"errors"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/auth/sasl"
)

func scramCredential(mechanism string, iterations int32, key byte) *metav1.ScramCredential {
	size := sasl.KeySize(mechanism)
	return &metav1.ScramCredential{Mechanism: mechanism, Salt: []byte("12345678"), Iterations: iterations,
		StoredKey: bytes.Repeat([]byte{key}, size), ServerKey: bytes.Repeat([]byte{key + 1}, size)}
}

func upsert(user string, c *metav1.ScramCredential) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_UpsertScramCredential{UpsertScramCredential: &metav1.UpsertScramCredential{User: user, Credential: c}}}
}

func deleteCredential(user, mechanism string) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_DeleteScramCredential{DeleteScramCredential: &metav1.DeleteScramCredential{User: user, Mechanism: mechanism}}}
}

// TestUsers: credentials are created, replaced and deleted per mechanism,
// users kept sorted and removed with their last credential; a snapshot
// carries them; bad credentials are refused without a change.
func TestUsers(t *testing.T) {
	m := fixture(t)
	applyNext(t, m, upsert("zoe", scramCredential(sasl.ScramSHA512, 4096, 1)))
	applyNext(t, m, upsert("alice", scramCredential(sasl.ScramSHA512, 4096, 2)))
	applyNext(t, m, upsert("alice", scramCredential(sasl.ScramSHA256, 8192, 3)))
	applyNext(t, m, upsert("alice", scramCredential(sasl.ScramSHA512, 16384, 4)))
	users := m.Users()
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "zoe" {
		t.Fatalf("users %v, want alice and zoe", users)
	}
	if c := users[0].Credentials; len(c) != 2 || c[0].Mechanism != sasl.ScramSHA256 || c[1].Iterations != 16384 {
		t.Fatalf("alice's credentials %v", c)
	}
	for _, bad := range []*metav1.Command{
		upsert("", scramCredential(sasl.ScramSHA512, 4096, 1)),
		upsert("bad\x01name", scramCredential(sasl.ScramSHA512, 4096, 1)),
		upsert("bob", scramCredential(sasl.ScramSHA512, 100, 1)),
		upsert("bob", scramCredential("SCRAM-SHA-1", 4096, 1)),
		upsert("bob", &metav1.ScramCredential{Mechanism: sasl.ScramSHA256, Salt: []byte("12345678"), Iterations: 4096, StoredKey: []byte{1}, ServerKey: []byte{2}}),
		upsert("bob", nil),
		deleteCredential("bob", sasl.ScramSHA256),
		deleteCredential("zoe", sasl.ScramSHA256),
	} {
		before := m.State()
		res := applyNextRefused(t, m, bad)
		if err := ResultError(res); !errors.Is(err, ErrInvalidCredential) && !errors.Is(err, ErrUnknownCredential) {
			t.Errorf("%v: %v", bad, err)
		}
		if !unchangedBut(before, m.State()) {
			t.Errorf("refused %v changed the state", bad)
		}
	}
	applyNext(t, m, deleteCredential("zoe", sasl.ScramSHA512))
	applyNext(t, m, deleteCredential("alice", sasl.ScramSHA512))
	if _, ok := m.ScramCredential("alice", sasl.ScramSHA512); ok {
		t.Fatal("deleted credential still there")
	}
	if c, ok := m.ScramCredential("alice", sasl.ScramSHA256); !ok || c.Iterations != 8192 {
		t.Fatalf("alice's SCRAM-SHA-256 credential %v %v", c, ok)
	}
	again := fixture(t)
	if err := again.Restore(snapshot(t, m)); err != nil {
		t.Fatal(err)
	}
	if users := again.Users(); len(users) != 1 || users[0].Name != "alice" {
		t.Fatalf("restored users %v, want alice alone", users)
	}
}

// TestCheckStateUsers: a state with users out of order or a user without
// credentials is refused.
func TestCheckStateUsers(t *testing.T) {
	m := fixture(t)
	st := m.State()
	st.Users = []*metav1.User{
		{Name: "b", Credentials: []*metav1.ScramCredential{scramCredential(sasl.ScramSHA256, 4096, 1)}},
		{Name: "a", Credentials: []*metav1.ScramCredential{scramCredential(sasl.ScramSHA256, 4096, 1)}},
	}
	if err := CheckState(st); err == nil {
		t.Fatal("users out of order accepted")
	}
	st.Users = []*metav1.User{{Name: "a"}}
	if err := CheckState(st); err == nil {
		t.Fatal("a user without credentials accepted")
	}
}
