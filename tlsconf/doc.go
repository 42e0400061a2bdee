// Package tlsconf builds the TLS configurations of a node and of its
// clients: the Kafka listeners (SSL, SASL_SSL), the HTTP listener, the
// connections between cluster nodes, and the CLI's client side.
//
// Every server configuration asks for TLS 1.2 at least. The node's
// certificate and key are a Keypair: the files are read again when their
// modification time or size changed, looked at no more often than once per
// ReloadCheckInterval, from the handshake that needs them. A pair that does
// not load (a half-written file, a key that does not match) keeps the
// previous pair serving and is logged; connections already open keep the
// certificate they shook hands with, new handshakes get the new one.
//
// A client certificate names a principal (auth.Principal, User:NAME) through
// mapping rules with the syntax of Kafka's ssl.principal.mapping.rules
// (rules.go): the subject distinguished name in RFC 2253 form (SubjectDN)
// is matched against each RULE:pattern/replacement/[LU] in turn, and
// DEFAULT keeps the whole name.
package tlsconf
