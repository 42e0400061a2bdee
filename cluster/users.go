package cluster

import (
	"fmt"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/meta"
)

// Users' errors, mapped to Kafka error codes by the front ends.
var (
	// ErrInvalidCredential: a user name or credential the rules refuse
	// (mechanism, iterations, salt).
	ErrInvalidCredential = meta.ErrInvalidCredential
	// ErrUnknownCredential: no such user, or no credential of that mechanism.
	ErrUnknownCredential = meta.ErrUnknownCredential
)

// UserInfo is a user as DescribeUserScramCredentials shows it: its name
// and, per mechanism, the iteration count (never the keys).
type UserInfo struct {
	Name        string
	Credentials []CredentialInfo
}

// CredentialInfo is one of a user's credentials.
type CredentialInfo struct {
	Mechanism  string
	Iterations int32
}

// UpsertScramCredential creates or replaces user's credential for
// mechanism from a salted password (Hi(password, salt, iterations), what
// Kafka's AlterUserScramCredentials carries): the stored and server keys
// are derived here, and only they are proposed to the metadata group.
func (c *Cluster) UpsertScramCredential(user, mechanism string, iterations int32, salt, saltedPassword []byte) error {
	cred, err := sasl.NewCredential(mechanism, salt, saltedPassword, iterations)
	if err != nil {
		return fmt.Errorf("%w: user %q: %v", ErrInvalidCredential, user, err)
	}
	cmd := &metav1.UpsertScramCredential{User: user, Credential: &metav1.ScramCredential{
		Mechanism: cred.Mechanism, Salt: cred.Salt, Iterations: cred.Iterations,
		StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_UpsertScramCredential{UpsertScramCredential: cmd}}); err != nil {
		return fmt.Errorf("upsert %s credential of %q: %w", mechanism, user, err)
	}
	c.env.Logger.Info("user credential set", "user", user, "mechanism", mechanism, "iterations", iterations)
	return nil
}

// DeleteScramCredential removes user's credential for mechanism, and the
// user with its last one.
func (c *Cluster) DeleteScramCredential(user, mechanism string) error {
	cmd := &metav1.DeleteScramCredential{User: user, Mechanism: mechanism}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_DeleteScramCredential{DeleteScramCredential: cmd}}); err != nil {
		return fmt.Errorf("delete %s credential of %q: %w", mechanism, user, err)
	}
	c.env.Logger.Info("user credential deleted", "user", user, "mechanism", mechanism)
	return nil
}

// ScramCredential is user's applied credential for mechanism on this node
// (sasl.Credentials).
func (c *Cluster) ScramCredential(user, mechanism string) (sasl.Credential, bool) {
	cred, ok := c.ctl.ScramCredential(user, mechanism)
	if !ok {
		return sasl.Credential{}, false
	}
	return sasl.Credential{Mechanism: cred.Mechanism, Salt: cred.Salt, Iterations: cred.Iterations,
		StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}, true
}

// Users lists the users this node has applied, by name.
func (c *Cluster) Users() []UserInfo {
	users := c.ctl.Users()
	out := make([]UserInfo, len(users))
	for i, u := range users {
		out[i].Name = u.Name
		for _, cred := range u.Credentials {
			out[i].Credentials = append(out[i].Credentials, CredentialInfo{Mechanism: cred.Mechanism, Iterations: cred.Iterations})
		}
	}
	return out
}
