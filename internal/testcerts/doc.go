// Package testcerts makes certificate authorities and certificates for
// tests, in memory and as PEM files in a test's directory: nothing of the
// kind is kept in the repository.
package testcerts
