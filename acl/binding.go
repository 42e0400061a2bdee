package acl

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/cairnlog/cairn/auth"
)

// Limits every node applies alike when bindings are created (the metadata
// group refuses what breaks them).
const (
	// NameBytesMax bounds a resource name, a principal and a host.
	NameBytesMax = 1024
)

// ErrInvalid is wrapped by every refusal of Validate and ValidateFilter.
var ErrInvalid = errors.New("invalid ACL")

// Binding is one ACL.
type Binding struct {
	ResourceType ResourceType
	ResourceName string
	PatternType  PatternType
	// Principal is "Type:Name"; "User:*" stands for every principal.
	Principal string
	// Host is "*" or one IP address in its canonical form.
	Host       string
	Operation  Operation
	Permission Permission
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s on %s:%s:%s from %s", b.Permission, b.Principal, b.Operation,
		b.ResourceType, b.PatternType, b.ResourceName, b.Host)
}

// Validate reports why b cannot be stored, wrapping ErrInvalid.
func Validate(b Binding) error {
	if err := validate(b); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	return nil
}

func validate(b Binding) error {
	if !concreteResource(b.ResourceType) {
		return fmt.Errorf("resource type %s", b.ResourceType)
	}
	if b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed {
		return fmt.Errorf("pattern type %s: want Literal or Prefixed", b.PatternType)
	}
	if b.ResourceName == "" || len(b.ResourceName) > NameBytesMax {
		return fmt.Errorf("resource name of %d bytes: want 1 to %d", len(b.ResourceName), NameBytesMax)
	}
	if b.ResourceType == ResourceCluster && (b.ResourceName != ClusterName || b.PatternType != PatternLiteral) {
		return fmt.Errorf("the cluster resource is the literal %q", ClusterName)
	}
	if b.Operation < OpAll || b.Operation > OpIdempotentWrite {
		return fmt.Errorf("operation %s", b.Operation)
	}
	if b.Permission != PermissionAllow && b.Permission != PermissionDeny {
		return fmt.Errorf("permission %s: want Allow or Deny", b.Permission)
	}
	if _, err := auth.ParsePrincipal(b.Principal); err != nil || len(b.Principal) > NameBytesMax {
		return fmt.Errorf("principal %q: want TYPE:NAME (User:alice, User:*)", b.Principal)
	}
	return validateHost(b.Host)
}

func concreteResource(t ResourceType) bool { return t >= ResourceTopic && t <= ResourceTransactionalID }

func validateHost(host string) error {
	if host == Wildcard {
		return nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("host %q: want * or an IP address", host)
	}
	if addr.String() != host {
		// Hosts are compared as strings with a connection's address.
		return fmt.Errorf("host %q: write it as %s", host, addr)
	}
	return nil
}

// Compare orders bindings: by resource type, pattern type, name,
// principal, host, operation, permission. Stored sets keep this order.
func Compare(a, b Binding) int {
	return cmp.Or(
		cmp.Compare(a.ResourceType, b.ResourceType),
		cmp.Compare(a.PatternType, b.PatternType),
		strings.Compare(a.ResourceName, b.ResourceName),
		strings.Compare(a.Principal, b.Principal),
		strings.Compare(a.Host, b.Host),
		cmp.Compare(a.Operation, b.Operation),
		cmp.Compare(a.Permission, b.Permission),
	)
}

// Filter selects bindings (DescribeAcls, DeleteAcls). The Any values and
// empty strings match everything; PatternMatch with a name matches every
// binding that applies to a resource of that name (its literal, the
// literal wildcard and the prefixes of the name); PatternAny with a name
// matches the bindings of exactly that name, whatever their pattern.
type Filter struct {
	ResourceType ResourceType
	ResourceName string
	PatternType  PatternType
	Principal    string
	Host         string
	Operation    Operation
	Permission   Permission
}

// MatchAll is the filter every binding matches.
var MatchAll = Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}

// ValidateFilter reports why f is not a filter Kafka would accept.
func ValidateFilter(f Filter) error {
	switch {
	case f.ResourceType != ResourceAny && !concreteResource(f.ResourceType):
		return fmt.Errorf("%w: filter resource type %s", ErrInvalid, f.ResourceType)
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return fmt.Errorf("%w: filter pattern type %s", ErrInvalid, f.PatternType)
	case f.Operation < OpAny || f.Operation > OpIdempotentWrite:
		return fmt.Errorf("%w: filter operation %s", ErrInvalid, f.Operation)
	case f.Permission < PermissionAny || f.Permission > PermissionAllow:
		return fmt.Errorf("%w: filter permission %s", ErrInvalid, f.Permission)
	}
	return nil
}

// Matches reports whether f selects b.
func (f Filter) Matches(b Binding) bool {
	return (f.ResourceType == ResourceAny || f.ResourceType == b.ResourceType) &&
		(f.Principal == "" || f.Principal == b.Principal) &&
		(f.Host == "" || f.Host == b.Host) &&
		(f.Operation == OpAny || f.Operation == b.Operation) &&
		(f.Permission == PermissionAny || f.Permission == b.Permission) &&
		f.matchesPattern(b)
}

func (f Filter) matchesPattern(b Binding) bool {
	switch f.PatternType {
	case PatternAny:
		return f.ResourceName == "" || f.ResourceName == b.ResourceName
	case PatternMatch:
		return f.ResourceName == "" || appliesTo(b, f.ResourceName)
	default:
		return f.PatternType == b.PatternType && (f.ResourceName == "" || f.ResourceName == b.ResourceName)
	}
}

// appliesTo reports whether b's pattern covers a resource named name.
func appliesTo(b Binding, name string) bool {
	if b.PatternType == PatternPrefixed {
		return strings.HasPrefix(name, b.ResourceName)
	}
	return b.ResourceName == name || b.ResourceName == Wildcard
}
