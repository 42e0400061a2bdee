package server

import (
	"strings"
	"testing"

	"github.com/cairnlog/cairn/kafka"
)

// TestPeerWarning: a cluster node with the authorizer on is warned when
// its nodes' transaction requests cannot show who they are; a single node,
// no authorizer, or an SSL first listener with the node's certificate is
// not.
func TestPeerWarning(t *testing.T) {
	plain := Listener{Name: "LOCAL", Protocol: kafka.Plaintext}
	ssl := Listener{Name: "SECURE", Protocol: kafka.SSL}
	sasl := Listener{Name: "SASL", Protocol: kafka.SASLSSL}
	for _, tc := range []struct {
		clustered, authorizing bool
		first                  Listener
		peerTLS                bool
		want                   string
	}{
		{true, true, plain, false, "User:ANONYMOUS"},
		{true, true, sasl, true, "no SASL credentials"},
		{true, true, ssl, false, "--tls-client-ca-file"},
		{true, true, ssl, true, ""},
		{false, true, plain, false, ""},
		{true, false, plain, false, ""},
	} {
		got := peerWarning(tc.clustered, tc.authorizing, tc.first, tc.peerTLS)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want one containing %q", tc, got, tc.want)
		}
	}
}
