// Package auth names who is calling: the principal a Kafka connection or an
// HTTP request acts as, in Kafka's "Type:Name" form (User:alice).
//
// A connection starts as Anonymous (User:ANONYMOUS, as in Kafka). What
// authenticates it — a SASL exchange, a client certificate — replaces the
// principal; what authorizes a request reads it. HTTP handlers carry it in
// the request's context (WithPrincipal, FromContext).
//
// Subpackage sasl holds the pure server side of the SASL mechanisms that
// authenticate a Kafka connection; subpackage jwks keeps the keys of
// OAUTHBEARER's tokens current from a file or a URL.
package auth
