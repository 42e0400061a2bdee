// Package sasl is the server side of the SASL mechanisms the Kafka listener
// offers: PLAIN (RFC 4616), SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and
// OAUTHBEARER (RFC 7628: a JWT checked against the keys of a KeySet,
// oauth.go; package jwks keeps one current from a file or URL), the
// credentials SCRAM stores, and the per-address limiter of failed
// authentications.
//
// Everything here is pure: no sockets, no clock, no randomness of its own.
// A conversation (Conversation) takes the client's tokens and returns the
// server's; the nonce it sends is drawn from the io.Reader its caller gives,
// the credentials come from a Credentials lookup, and the limiter takes the
// time with each call (OAUTHBEARER's clock is given to EnableOAuthBearer).
// The token decoders (ParsePlain, ParseOAuthBearer, parseClientFirst,
// parseClientFinal) are fuzzed.
//
// # Credentials
//
// A SCRAM credential is what Kafka keeps: the salt, the iteration count,
// StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"), where SaltedPassword =
// PBKDF2-HMAC-H(password, salt, iterations). Neither the password nor the
// salted password is kept. A PLAIN login is checked against the user's
// SCRAM credential (SCRAM-SHA-512 first, else SCRAM-SHA-256): the password
// is salted and iterated with the stored salt and count and its StoredKey
// compared in constant time.
//
// An unknown user's SCRAM exchange runs to the end against a made-up
// credential (salt derived from the name), so a client cannot tell unknown
// users from wrong passwords.
package sasl
