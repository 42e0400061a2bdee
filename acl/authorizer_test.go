package acl

import (
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/auth"
)

func allow(principal string, op Operation, typ ResourceType, pattern PatternType, name string) Binding {
	return Binding{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal,
		Host: Wildcard, Operation: op, Permission: PermissionAllow}
}

func deny(principal string, op Operation, typ ResourceType, pattern PatternType, name string) Binding {
	b := allow(principal, op, typ, pattern, name)
	b.Permission = PermissionDeny
	return b
}

func fromHost(b Binding, host string) Binding { b.Host = host; return b }

// TestAuthorize is the decision table: each row a set of bindings, the
// authorizer's config and one request.
func TestAuthorize(t *testing.T) {
	alice, bob, admin := auth.User("alice"), auth.User("bob"), auth.User("admin")
	const lit, pre = PatternLiteral, PatternPrefixed
	for _, tc := range []struct {
		name       string
		bindings   []Binding
		superUsers []auth.Principal
		allowIfNo  bool
		who        auth.Principal
		host       string
		op         Operation
		typ        ResourceType
		resource   string
		want       bool
	}{
		{name: "no binding: default deny", who: alice, op: OpRead, typ: ResourceTopic, resource: "orders"},
		{name: "no binding, allow.everyone.if.no.acl.found", allowIfNo: true, who: alice, op: OpRead, typ: ResourceTopic, resource: "orders", want: true},
		{name: "a binding for another principal applies: no fallback", allowIfNo: true,
			bindings: []Binding{allow("User:bob", OpRead, ResourceTopic, lit, "orders")},
			who:      alice, op: OpRead, typ: ResourceTopic, resource: "orders"},
		{name: "a binding on another topic does not apply: fallback", allowIfNo: true,
			bindings: []Binding{allow("User:bob", OpRead, ResourceTopic, lit, "payments")},
			who:      alice, op: OpRead, typ: ResourceTopic, resource: "orders", want: true},
		{name: "literal allow", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: alice, op: OpWrite, typ: ResourceTopic, resource: "orders", want: true},
		{name: "literal allow is not another topic", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: alice, op: OpWrite, typ: ResourceTopic, resource: "orders2"},
		{name: "literal allow is not another principal", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: bob, op: OpWrite, typ: ResourceTopic, resource: "orders"},
		{name: "topic binding is not a group binding", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, lit, "g")},
			who: alice, op: OpRead, typ: ResourceGroup, resource: "g"},
		{name: "Write does not imply Read", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: alice, op: OpRead, typ: ResourceTopic, resource: "orders"},
		{name: "prefixed allow", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, pre, "ord")},
			who: alice, op: OpRead, typ: ResourceTopic, resource: "orders", want: true},
		{name: "prefixed allow, name outside the prefix", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, pre, "ord")},
			who: alice, op: OpRead, typ: ResourceTopic, resource: "payments"},
		{name: "prefixed is not a wildcard", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, pre, "*")},
			who: alice, op: OpRead, typ: ResourceTopic, resource: "orders"},
		{name: "wildcard resource", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, lit, "*")},
			who: alice, op: OpRead, typ: ResourceTopic, resource: "anything", want: true},
		{name: "wildcard principal", bindings: []Binding{allow("User:*", OpRead, ResourceTopic, lit, "orders")},
			who: bob, op: OpRead, typ: ResourceTopic, resource: "orders", want: true},
		{name: "deny wins over allow", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			deny("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: alice, op: OpWrite, typ: ResourceTopic, resource: "orders"},
		{name: "prefixed deny wins over literal allow", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			deny("User:*", OpAll, ResourceTopic, pre, "or")},
			who: alice, op: OpWrite, typ: ResourceTopic, resource: "orders"},
		{name: "deny of another operation leaves the allow", bindings: []Binding{
			allow("User:alice", OpAll, ResourceTopic, lit, "orders"),
			deny("User:alice", OpDelete, ResourceTopic, lit, "orders")},
			who: alice, op: OpWrite, typ: ResourceTopic, resource: "orders", want: true},
		{name: "deny of Read does not deny Describe", bindings: []Binding{
			allow("User:alice", OpDescribe, ResourceTopic, lit, "orders"),
			deny("User:alice", OpRead, ResourceTopic, lit, "orders")},
			who: alice, op: OpDescribe, typ: ResourceTopic, resource: "orders", want: true},
		{name: "deny from another host does not apply", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			fromHost(deny("User:alice", OpWrite, ResourceTopic, lit, "orders"), "10.0.0.9")},
			who: alice, host: "127.0.0.1", op: OpWrite, typ: ResourceTopic, resource: "orders", want: true},
		{name: "deny from the host applies", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			fromHost(deny("User:alice", OpWrite, ResourceTopic, lit, "orders"), "10.0.0.9")},
			who: alice, host: "10.0.0.9", op: OpWrite, typ: ResourceTopic, resource: "orders"},
		{name: "allow from another host", bindings: []Binding{fromHost(allow("User:alice", OpWrite, ResourceTopic, lit, "orders"), "10.0.0.9")},
			who: alice, host: "127.0.0.1", op: OpWrite, typ: ResourceTopic, resource: "orders"},
		{name: "super user bypasses deny", superUsers: []auth.Principal{admin},
			bindings: []Binding{deny("User:*", OpAll, ResourceCluster, lit, ClusterName)},
			who:      admin, op: OpAlter, typ: ResourceCluster, resource: ClusterName, want: true},
		{name: "super user with no binding", superUsers: []auth.Principal{admin},
			who: admin, op: OpDelete, typ: ResourceTopic, resource: "orders", want: true},
		{name: "Describe implied by Read", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, lit, "orders")},
			who: alice, op: OpDescribe, typ: ResourceTopic, resource: "orders", want: true},
		{name: "Describe implied by Write", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")},
			who: alice, op: OpDescribe, typ: ResourceTopic, resource: "orders", want: true},
		{name: "Describe implied by Delete", bindings: []Binding{allow("User:alice", OpDelete, ResourceGroup, lit, "g")},
			who: alice, op: OpDescribe, typ: ResourceGroup, resource: "g", want: true},
		{name: "Describe implied by Alter", bindings: []Binding{allow("User:alice", OpAlter, ResourceCluster, lit, ClusterName)},
			who: alice, op: OpDescribe, typ: ResourceCluster, resource: ClusterName, want: true},
		{name: "Describe not implied by Create", bindings: []Binding{allow("User:alice", OpCreate, ResourceTopic, lit, "orders")},
			who: alice, op: OpDescribe, typ: ResourceTopic, resource: "orders"},
		{name: "DescribeConfigs implied by AlterConfigs", bindings: []Binding{allow("User:alice", OpAlterConfigs, ResourceTopic, lit, "orders")},
			who: alice, op: OpDescribeConfigs, typ: ResourceTopic, resource: "orders", want: true},
		{name: "AlterConfigs not implied by DescribeConfigs", bindings: []Binding{allow("User:alice", OpDescribeConfigs, ResourceTopic, lit, "orders")},
			who: alice, op: OpAlterConfigs, typ: ResourceTopic, resource: "orders"},
		{name: "All covers everything", bindings: []Binding{allow("User:alice", OpAll, ResourceCluster, lit, ClusterName)},
			who: alice, op: OpIdempotentWrite, typ: ResourceCluster, resource: ClusterName, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, b := range tc.bindings {
				if err := Validate(b); err != nil {
					t.Fatalf("test binding: %v", err)
				}
			}
			host := tc.host
			if host == "" {
				host = "127.0.0.1"
			}
			a := NewAuthorizer(Config{SuperUsers: tc.superUsers, AllowEveryoneIfNoACL: tc.allowIfNo})
			req := Request{Principal: tc.who, Host: host, Operation: tc.op, ResourceType: tc.typ, ResourceName: tc.resource}
			if got := a.Authorize(NewSet(tc.bindings), req); got != tc.want {
				t.Fatalf("Authorize(%+v) = %v, want %v", req, got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "orders")
	for _, tc := range []struct {
		name   string
		change func(*Binding)
		ok     bool
	}{
		{name: "good", change: func(*Binding) {}, ok: true},
		{name: "ipv4 host", change: func(b *Binding) { b.Host = "10.1.2.3" }, ok: true},
		{name: "ipv6 host", change: func(b *Binding) { b.Host = "::1" }, ok: true},
		{name: "cluster", change: func(b *Binding) { b.ResourceType, b.ResourceName = ResourceCluster, ClusterName }, ok: true},
		{name: "hostname", change: func(b *Binding) { b.Host = "example.com" }},
		{name: "uncanonical ip", change: func(b *Binding) { b.Host = "0:0:0:0:0:0:0:1" }},
		{name: "any resource", change: func(b *Binding) { b.ResourceType = ResourceAny }},
		{name: "match pattern", change: func(b *Binding) { b.PatternType = PatternMatch }},
		{name: "any operation", change: func(b *Binding) { b.Operation = OpAny }},
		{name: "any permission", change: func(b *Binding) { b.Permission = PermissionAny }},
		{name: "empty name", change: func(b *Binding) { b.ResourceName = "" }},
		{name: "no principal type", change: func(b *Binding) { b.Principal = "alice" }},
		{name: "other cluster name", change: func(b *Binding) { b.ResourceType, b.ResourceName = ResourceCluster, "c" }},
	} {
		b := good
		tc.change(&b)
		if err := Validate(b); (err == nil) != tc.ok {
			t.Errorf("%s: Validate(%v) = %v", tc.name, b, err)
		}
	}
}

// TestFilter checks Kafka's filter semantics, MATCH and ANY in particular.
func TestFilter(t *testing.T) {
	lit := allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "orders")
	wild := allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "*")
	pre := allow("User:bob", OpWrite, ResourceTopic, PatternPrefixed, "ord")
	other := allow("User:bob", OpRead, ResourceTopic, PatternPrefixed, "orders")
	group := deny("User:alice", OpRead, ResourceGroup, PatternLiteral, "orders")
	set := NewSet([]Binding{lit, wild, pre, other, group, lit})
	if set.Len() != 5 {
		t.Fatalf("set of %d bindings, want 5 (a duplicate)", set.Len())
	}
	for _, tc := range []struct {
		name   string
		filter Filter
		want   []Binding
	}{
		{name: "all", filter: MatchAll, want: []Binding{wild, lit, pre, other, group}},
		{name: "topics", filter: Filter{ResourceType: ResourceTopic, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny},
			want: []Binding{wild, lit, pre, other}},
		{name: "any pattern, exact name", filter: Filter{ResourceType: ResourceAny, ResourceName: "orders", PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny},
			want: []Binding{lit, other, group}},
		{name: "match name", filter: Filter{ResourceType: ResourceTopic, ResourceName: "orders", PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny},
			want: []Binding{wild, lit, pre, other}},
		{name: "match other name", filter: Filter{ResourceType: ResourceTopic, ResourceName: "ordinal", PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny},
			want: []Binding{wild, pre}},
		{name: "prefixed only", filter: Filter{ResourceType: ResourceTopic, PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny},
			want: []Binding{pre, other}},
		{name: "principal and op", filter: Filter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: "User:bob", Operation: OpWrite, Permission: PermissionAny},
			want: []Binding{pre}},
		{name: "deny", filter: Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionDeny},
			want: []Binding{group}},
	} {
		got := set.Bindings(tc.filter)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

func TestParseNames(t *testing.T) {
	for in, want := range map[string]Operation{"Write": OpWrite, "describe_configs": OpDescribeConfigs, "IDEMPOTENTWRITE": OpIdempotentWrite} {
		if got, err := ParseOperation(in); err != nil || got != want {
			t.Errorf("ParseOperation(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOperation("fly"); err == nil {
		t.Error("ParseOperation(fly) succeeded")
	}
	if got, err := ParseResourceType("transactional_id"); err != nil || got != ResourceTransactionalID {
		t.Errorf("ParseResourceType = %v, %v", got, err)
	}
}

// TestAuthorizeAny: an idempotent producer's "Write on some topic".
func TestAuthorizeAny(t *testing.T) {
	alice := auth.User("alice")
	const lit, pre = PatternLiteral, PatternPrefixed
	for _, tc := range []struct {
		name      string
		bindings  []Binding
		allowIfNo bool
		want      bool
	}{
		{name: "no binding", want: false},
		{name: "no binding, allow everyone", allowIfNo: true, want: true},
		{name: "a topic binding for someone else, allow everyone", allowIfNo: true,
			bindings: []Binding{allow("User:bob", OpWrite, ResourceTopic, lit, "x")}},
		{name: "Write on one topic", bindings: []Binding{allow("User:alice", OpWrite, ResourceTopic, lit, "orders")}, want: true},
		{name: "All on a prefix", bindings: []Binding{allow("User:*", OpAll, ResourceTopic, pre, "ord")}, want: true},
		{name: "Read only", bindings: []Binding{allow("User:alice", OpRead, ResourceTopic, lit, "orders")}},
		{name: "Write on a group is no topic", bindings: []Binding{allow("User:alice", OpWrite, ResourceGroup, lit, "g")}},
		{name: "Write denied on its topic", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			deny("User:alice", OpWrite, ResourceTopic, lit, "orders")}},
		{name: "Write denied on every topic", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, pre, "ord"),
			deny("User:alice", OpAll, ResourceTopic, lit, "*")}},
		{name: "Write denied elsewhere", bindings: []Binding{
			allow("User:alice", OpWrite, ResourceTopic, lit, "orders"),
			deny("User:alice", OpWrite, ResourceTopic, lit, "payments")}, want: true},
	} {
		a := NewAuthorizer(Config{AllowEveryoneIfNoACL: tc.allowIfNo})
		req := Request{Principal: alice, Host: "127.0.0.1", Operation: OpWrite, ResourceType: ResourceTopic}
		if got := a.AuthorizeAny(NewSet(tc.bindings), req); got != tc.want {
			t.Errorf("%s: AuthorizeAny = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkAuthorize is one produce's check among many bindings: 1,000
// literal topic bindings, 100 prefixes, a wildcard deny for another user.
func BenchmarkAuthorize(b *testing.B) {
	var bindings []Binding
	for i := range 1000 {
		bindings = append(bindings, allow(fmt.Sprintf("User:u%d", i%50), OpWrite, ResourceTopic, PatternLiteral, fmt.Sprintf("topic-%d", i)))
	}
	for i := range 100 {
		bindings = append(bindings, allow("User:u7", OpRead, ResourceTopic, PatternPrefixed, fmt.Sprintf("team-%d-", i)))
	}
	bindings = append(bindings, deny("User:mallory", OpAll, ResourceTopic, PatternLiteral, Wildcard))
	set, a := NewSet(bindings), NewAuthorizer(Config{})
	req := Request{Principal: auth.User("u7"), Host: "10.0.0.1", Operation: OpWrite, ResourceType: ResourceTopic, ResourceName: "topic-507"}
	if !a.Authorize(set, req) {
		b.Fatal("refused")
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Authorize(set, req)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9092":        "127.0.0.1",
		"[::ffff:10.0.0.1]:443": "10.0.0.1",
		"[::1]:80":              "::1",
		"10.0.0.2":              "10.0.0.2",
		"node1:9092":            "node1",
	} {
		if got := HostOf(in); got != want {
			t.Errorf("HostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
