package server

import (
	"fmt"

	"github.com/cairnlog/cairn/kafka"
)

// peerWarning says what a cluster node with the authorizer on lacks for
// its own requests to the other nodes (transaction markers, KIP-890
// verifications), which go to their first listener and need ClusterAction
// there (docs/transactions.md#authorization); "" when nothing is missing
// or the checks are off. Nothing refuses to start: the ACLs may grant it.
func peerWarning(clustered, authorizing bool, first Listener, peerTLS bool) string {
	if !clustered || !authorizing {
		return ""
	}
	switch {
	case first.Protocol.SASL():
		return fmt.Sprintf("the nodes' transaction requests to each other go to the first listener %s (%s), where they carry no SASL credentials: make the first listener SSL", first.Name, first.Protocol)
	case first.Protocol == kafka.Plaintext:
		return fmt.Sprintf("the nodes' transaction requests to each other go to the first listener %s (PLAINTEXT) as User:ANONYMOUS, which then needs ClusterAction on the cluster, as does any client of that listener: make the first listener SSL", first.Name)
	case !peerTLS:
		return fmt.Sprintf("the nodes' transaction requests to each other go to the first listener %s (%s) without a certificate: give --tls-client-ca-file so they show the node's", first.Name, first.Protocol)
	}
	return ""
}
