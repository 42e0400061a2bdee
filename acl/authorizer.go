package acl

import (
	"slices"
	"strings"

	"github.com/cairnlog/cairn/auth"
)

// Set is an immutable, indexed set of bindings. The zero value and nil are
// empty sets.
type Set struct {
	bindings []Binding // sorted by Compare, unique
	// literal holds the LITERAL bindings by resource (the wildcard "*" under
	// its own name); prefixed the PREFIXED ones by type, scanned.
	literal  map[resourceKey][]Binding
	prefixed map[ResourceType][]Binding
}

type resourceKey struct {
	typ  ResourceType
	name string
}

// NewSet indexes bindings, which it sorts and deduplicates (a copy).
func NewSet(bindings []Binding) *Set {
	sorted := slices.Clone(bindings)
	slices.SortFunc(sorted, Compare)
	sorted = slices.CompactFunc(sorted, func(a, b Binding) bool { return a == b })
	s := &Set{bindings: sorted, literal: map[resourceKey][]Binding{}, prefixed: map[ResourceType][]Binding{}}
	for _, b := range sorted {
		if b.PatternType == PatternPrefixed {
			s.prefixed[b.ResourceType] = append(s.prefixed[b.ResourceType], b)
			continue
		}
		k := resourceKey{b.ResourceType, b.ResourceName}
		s.literal[k] = append(s.literal[k], b)
	}
	return s
}

// Len is the number of bindings.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.bindings)
}

// Bindings returns the bindings f selects, in order.
func (s *Set) Bindings(f Filter) []Binding {
	if s == nil {
		return nil
	}
	var out []Binding
	for _, b := range s.bindings {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	return out
}

// forEachApplying calls fn with every binding that applies to the resource
// (type, name), stopping when fn returns false.
func (s *Set) forEachApplying(typ ResourceType, name string, fn func(Binding) bool) {
	if s == nil {
		return
	}
	for _, b := range s.literal[resourceKey{typ, name}] {
		if !fn(b) {
			return
		}
	}
	if name != Wildcard {
		for _, b := range s.literal[resourceKey{typ, Wildcard}] {
			if !fn(b) {
				return
			}
		}
	}
	for _, b := range s.prefixed[typ] {
		if strings.HasPrefix(name, b.ResourceName) && !fn(b) {
			return
		}
	}
}

// Config is how an authorizer decides beyond the bindings.
type Config struct {
	// SuperUsers are allowed everything, whatever the bindings say.
	SuperUsers []auth.Principal
	// AllowEveryoneIfNoACL allows an operation on a resource to which no
	// binding applies (Kafka's allow.everyone.if.no.acl.found); otherwise
	// such a resource is refused to all but super users.
	AllowEveryoneIfNoACL bool
}

// Authorizer decides requests against a Set. It is immutable.
type Authorizer struct {
	superUsers   map[auth.Principal]bool
	allowIfNoACL bool
}

// NewAuthorizer returns the authorizer of cfg.
func NewAuthorizer(cfg Config) *Authorizer {
	a := &Authorizer{superUsers: map[auth.Principal]bool{}, allowIfNoACL: cfg.AllowEveryoneIfNoACL}
	for _, p := range cfg.SuperUsers {
		a.superUsers[p] = true
	}
	return a
}

// Request is one question: may Principal, connected from Host, perform
// Operation on the resource (ResourceType, ResourceName)?
type Request struct {
	Principal    auth.Principal
	Host         string
	Operation    Operation
	ResourceType ResourceType
	ResourceName string
}

// wildcardPrincipal is the binding principal standing for every principal.
const wildcardPrincipal = "User:*"

// Authorize decides r against the bindings of set (see the package doc).
func (a *Authorizer) Authorize(set *Set, r Request) bool {
	if a.superUsers[r.Principal] {
		return true
	}
	principal := r.Principal.String()
	applying, denied, allowed := false, false, false
	set.forEachApplying(r.ResourceType, r.ResourceName, func(b Binding) bool {
		applying = true
		if b.Principal != principal && b.Principal != wildcardPrincipal {
			return true
		}
		if b.Host != Wildcard && b.Host != r.Host {
			return true
		}
		switch b.Permission {
		case PermissionDeny:
			// A DENY covers its operation or ALL, never the operations its
			// operation would imply for an ALLOW.
			if b.Operation == OpAll || b.Operation == r.Operation {
				denied = true
				return false
			}
		case PermissionAllow:
			allowed = allowed || implies(b.Operation, r.Operation)
		}
		return true
	})
	switch {
	case denied:
		return false
	case allowed:
		return true
	default:
		return !applying && a.allowIfNoACL
	}
}

// implies reports whether an ALLOW of granted allows op.
func implies(granted, op Operation) bool {
	if granted == op || granted == OpAll {
		return true
	}
	switch op {
	case OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// AuthorizeAny decides whether r's principal may perform r's operation on
// some resource of r's type (r.ResourceName is ignored), as Kafka's
// authorizeByResourceType does for an idempotent producer: some ALLOW of
// the principal for the type whose own resource the DENYs leave allowed,
// or, with AllowEveryoneIfNoACL, no binding of the type at all.
func (a *Authorizer) AuthorizeAny(set *Set, r Request) bool {
	if a.superUsers[r.Principal] {
		return true
	}
	if set == nil {
		return a.allowIfNoACL
	}
	principal := r.Principal.String()
	ofType := false
	for _, b := range set.bindings {
		if b.ResourceType != r.ResourceType {
			continue
		}
		ofType = true
		if b.Permission != PermissionAllow || !implies(b.Operation, r.Operation) ||
			(b.Principal != principal && b.Principal != wildcardPrincipal) || (b.Host != Wildcard && b.Host != r.Host) {
			continue
		}
		// The binding's own name (a prefix names a resource it covers)
		// stands for the resources it allows: allowed there unless denied.
		probe := r
		probe.ResourceName = b.ResourceName
		if a.Authorize(set, probe) {
			return true
		}
	}
	return !ofType && a.allowIfNoACL
}
