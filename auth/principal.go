package auth

import (
	"context"
	"fmt"
	"strings"
)

// Principal is an authenticated identity: a type (Kafka knows "User", and
// "Group" in some authorizers) and a name.
type Principal struct {
	Type string
	Name string
}

// UserType is the principal type every authenticated identity has.
const UserType = "User"

// Anonymous is the principal of a caller that did not authenticate.
var Anonymous = Principal{Type: UserType, Name: "ANONYMOUS"}

// User returns the User principal with the given name.
func User(name string) Principal { return Principal{Type: UserType, Name: name} }

// String renders p as Kafka does: "User:alice".
func (p Principal) String() string { return p.Type + ":" + p.Name }

// IsAnonymous reports whether p is the unauthenticated principal.
func (p Principal) IsAnonymous() bool { return p == Anonymous }

// ParsePrincipal reads "Type:Name" (the name may contain colons). The type
// and the name must both be non-empty.
func ParsePrincipal(s string) (Principal, error) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || typ == "" || name == "" {
		return Principal{}, fmt.Errorf("principal %q: want TYPE:NAME, e.g. User:alice", s)
	}
	return Principal{Type: typ, Name: name}, nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries, or Anonymous.
func FromContext(ctx context.Context) Principal {
	if p, ok := ctx.Value(principalKey{}).(Principal); ok {
		return p
	}
	return Anonymous
}
