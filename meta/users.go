package meta

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/auth/sasl"
	"google.golang.org/protobuf/proto"
)

// UsersMax bounds the users the cluster keeps: every node holds them all in
// its state and its snapshots.
const UsersMax = 100_000

// checkUserName: a non-empty name of valid UTF-8 without control
// characters, at most sasl.NameBytesMax bytes (it becomes User:NAME).
func checkUserName(name string) error {
	if name == "" || len(name) > sasl.NameBytesMax || !utf8.ValidString(name) {
		return fmt.Errorf("user name %q: must be 1 to %d bytes of UTF-8", name, sasl.NameBytesMax)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("user name %q: control characters", name)
	}
	return nil
}

// checkCredential checks a credential's shape: a SCRAM mechanism, Kafka's
// iteration bounds, a salt and keys of the mechanism's sizes.
func checkCredential(c *metav1.ScramCredential) error {
	if c == nil {
		return fmt.Errorf("no credential")
	}
	if err := sasl.CheckCredentialShape(c.Mechanism, c.Salt, c.Iterations); err != nil {
		return err
	}
	if size := sasl.KeySize(c.Mechanism); len(c.StoredKey) != size || len(c.ServerKey) != size {
		return fmt.Errorf("%s keys of %d and %d bytes, want %d", c.Mechanism, len(c.StoredKey), len(c.ServerKey), size)
	}
	return nil
}

func checkUsers(users []*metav1.User) error {
	if len(users) > UsersMax {
		return fmt.Errorf("%d users, at most %d", len(users), UsersMax)
	}
	for i, u := range users {
		if i > 0 && users[i-1].Name >= u.Name {
			return fmt.Errorf("users out of order or repeated at %q", u.Name)
		}
		if err := checkUserName(u.Name); err != nil {
			return err
		}
		if len(u.Credentials) == 0 {
			return fmt.Errorf("user %q has no credential", u.Name)
		}
		for j, c := range u.Credentials {
			if j > 0 && u.Credentials[j-1].Mechanism >= c.Mechanism {
				return fmt.Errorf("user %q: credentials out of order or repeated", u.Name)
			}
			if err := checkCredential(c); err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
		}
	}
	return nil
}

func (m *Machine) findUser(name string) (int, bool) {
	return slices.BinarySearchFunc(m.state.Users, name, func(u *metav1.User, name string) int {
		return strings.Compare(u.Name, name)
	})
}

func (m *Machine) upsertScramCredential(c *metav1.UpsertScramCredential) (*metav1.Result, *refusal) {
	if err := checkUserName(c.User); err != nil {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_CREDENTIAL, "%v", err)
	}
	if err := checkCredential(c.Credential); err != nil {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_CREDENTIAL, "user %q: %v", c.User, err)
	}
	cred := proto.CloneOf(c.Credential)
	i, ok := m.findUser(c.User)
	if !ok {
		if len(m.state.Users) >= UsersMax {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "%d users, at most %d", len(m.state.Users), UsersMax)
		}
		m.state.Users = slices.Insert(m.state.Users, i, &metav1.User{Name: c.User, Credentials: []*metav1.ScramCredential{cred}})
		return &metav1.Result{}, nil
	}
	u := m.state.Users[i]
	j, found := slices.BinarySearchFunc(u.Credentials, cred.Mechanism, func(c *metav1.ScramCredential, mech string) int {
		return strings.Compare(c.Mechanism, mech)
	})
	if found {
		u.Credentials[j] = cred
	} else {
		u.Credentials = slices.Insert(u.Credentials, j, cred)
	}
	return &metav1.Result{}, nil
}

func (m *Machine) deleteScramCredential(c *metav1.DeleteScramCredential) (*metav1.Result, *refusal) {
	i, ok := m.findUser(c.User)
	if !ok {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_CREDENTIAL, "no user %q", c.User)
	}
	u := m.state.Users[i]
	j := slices.IndexFunc(u.Credentials, func(cred *metav1.ScramCredential) bool { return cred.Mechanism == c.Mechanism })
	if j < 0 {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_CREDENTIAL, "user %q has no %s credential", c.User, c.Mechanism)
	}
	u.Credentials = slices.Delete(u.Credentials, j, j+1)
	if len(u.Credentials) == 0 {
		m.state.Users = slices.Delete(m.state.Users, i, i+1)
	}
	return &metav1.Result{}, nil
}

// ScramCredential returns a copy of user's credential for mechanism.
func (m *Machine) ScramCredential(user, mechanism string) (*metav1.ScramCredential, bool) {
	i, ok := m.findUser(user)
	if !ok {
		return nil, false
	}
	for _, c := range m.state.Users[i].Credentials {
		if c.Mechanism == mechanism {
			return proto.CloneOf(c), true
		}
	}
	return nil, false
}

// Users returns a copy of every user, by name.
func (m *Machine) Users() []*metav1.User {
	out := make([]*metav1.User, len(m.state.Users))
	for i, u := range m.state.Users {
		out[i] = proto.CloneOf(u)
	}
	return out
}
