// Package jwks keeps the JSON Web Key Set that OAUTHBEARER tokens (and the
// HTTP API's Bearer tokens) are checked against current, read from a file
// or fetched from a URL.
//
// A Set is read once when it is opened: a source that cannot be read, or
// holds no usable public key, stops the start-up. After that the keys are
// refreshed on demand, when a token is checked (Set.Key), on the clock the
// Set was given:
//
//   - when the keys are older than Config.RefreshInterval (a URL: 5 minutes;
//     a file: 1 second, so an edited file is picked up as tlsconf picks up
//     new certificates);
//   - when a token names a kid the set does not hold, at most once per
//     Config.MissRefreshMin (a URL: 10 seconds), the usual handling of an
//     issuer that rotates its keys: the new key is published before tokens
//     are signed with it.
//
// A refresh that fails (unreachable URL, HTTP error, a JWKS that does not
// parse) keeps the previous keys and logs; the same broken content is
// logged once. One fetch is bounded by Config.FetchTimeout and by
// BodyBytesMax, and at most one runs at a time.
//
// A URL must be https, or http to a loopback address (for tests and a
// local proxy): keys fetched in the clear over a network could be
// replaced by anyone on the path.
package jwks
