package meta

import (
	"bytes"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

func registerWithNonce(node int32, addr string, nonce []byte) *metav1.Command {
	c := register(node, 0, addr)
	c.GetRegisterBroker().RegistrationNonce = nonce
	return c
}

// TestRegisterBrokerRetryIsIdempotent: a registration repeated with the
// nonce of the one that made the current incarnation (a retried proposal
// that committed twice) answers that incarnation and bumps nothing; a new
// nonce (the node lost its data again) makes a new incarnation.
func TestRegisterBrokerRetryIsIdempotent(t *testing.T) {
	m := fixture(t)
	first, second := []byte("nonce-a"), []byte("nonce-b")
	for _, tc := range []struct {
		node  int32
		nonce []byte
		want  uint32
	}{
		{6, first, 1}, {6, first, 1}, // a new node, and the retry
		{1, first, 2}, {1, first, 2}, // a known node's new incarnation, and the retry
		{1, second, 3},
		{1, nil, 4}, {1, nil, 5}, // no nonce: every registration is a new one
	} {
		res := applyNext(t, m, registerWithNonce(tc.node, "n:1", tc.nonce))
		if res.Incarnation != tc.want {
			t.Fatalf("node %d nonce %q: incarnation %d, want %d", tc.node, tc.nonce, res.Incarnation, tc.want)
		}
		if b := brokerOf(t, m, tc.node); b.Incarnation != tc.want || !bytes.Equal(b.RegistrationNonce, tc.nonce) {
			t.Fatalf("node %d: broker %v, want incarnation %d with nonce %q", tc.node, b, tc.want, tc.nonce)
		}
	}
	if res := applyNextRefused(t, m, registerWithNonce(7, "n:1", bytes.Repeat([]byte("x"), RegistrationNonceBytesMax+1))); res.Code != codeInvalidCommand {
		t.Fatalf("an over-long nonce: %s", res.Code)
	}
}
