package acl

import (
	"fmt"
	"net"
	"strings"
)

// ResourceType is what a binding is about; the values are Kafka's codes.
type ResourceType int8

// The resource types (Kafka's codes). DelegationToken is not served.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1 // filters only
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
)

// ClusterName is the one name of the cluster resource, as in Kafka.
const ClusterName = "kafka-cluster"

// Wildcard is the resource name, principal name and host matching all.
const Wildcard = "*"

// PatternType says how a binding's resource name matches; Kafka's codes.
type PatternType int8

// The pattern types (Kafka's codes).
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1 // filters only: any pattern, the name exactly
	PatternMatch    PatternType = 2 // filters only: every pattern applying to the name
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is what a principal does to a resource; Kafka's codes.
type Operation int8

// The operations (Kafka's codes).
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1 // filters only
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
)

// Permission is a binding's verdict; Kafka's codes.
type Permission int8

// The permissions (Kafka's codes).
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1 // filters only
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

var (
	resourceNames = map[ResourceType]string{ResourceAny: "Any", ResourceTopic: "Topic", ResourceGroup: "Group",
		ResourceCluster: "Cluster", ResourceTransactionalID: "TransactionalId"}
	patternNames = map[PatternType]string{PatternAny: "Any", PatternMatch: "Match", PatternLiteral: "Literal",
		PatternPrefixed: "Prefixed"}
	operationNames = map[Operation]string{OpAny: "Any", OpAll: "All", OpRead: "Read", OpWrite: "Write",
		OpCreate: "Create", OpDelete: "Delete", OpAlter: "Alter", OpDescribe: "Describe",
		OpClusterAction: "ClusterAction", OpDescribeConfigs: "DescribeConfigs", OpAlterConfigs: "AlterConfigs",
		OpIdempotentWrite: "IdempotentWrite"}
	permissionNames = map[Permission]string{PermissionAny: "Any", PermissionDeny: "Deny", PermissionAllow: "Allow"}
)

func (t ResourceType) String() string { return nameOf(resourceNames, t) }
func (t PatternType) String() string  { return nameOf(patternNames, t) }
func (o Operation) String() string    { return nameOf(operationNames, o) }
func (p Permission) String() string   { return nameOf(permissionNames, p) }

func nameOf[K ~int8](names map[K]string, k K) string {
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("Unknown(%d)", int8(k))
}

// parse finds the value named s, ignoring case and underscores, so that
// "describe_configs", "DescribeConfigs" and "DESCRIBECONFIGS" all name one.
func parse[K ~int8](what string, names map[K]string, s string) (K, error) {
	want := strings.ReplaceAll(strings.ToLower(s), "_", "")
	for k, n := range names {
		if strings.ToLower(n) == want {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, s)
}

// ParseResourceType reads a resource type by name (Topic, group, ...).
func ParseResourceType(s string) (ResourceType, error) {
	return parse("resource type", resourceNames, s)
}

// ParsePatternType reads a pattern type by name (literal, PREFIXED, ...).
func ParsePatternType(s string) (PatternType, error) { return parse("pattern type", patternNames, s) }

// ParseOperation reads an operation by name (Write, describe_configs, ...).
func ParseOperation(s string) (Operation, error) { return parse("operation", operationNames, s) }

// ParsePermission reads a permission by name (allow, DENY).
func ParsePermission(s string) (Permission, error) { return parse("permission", permissionNames, s) }

// ResourceTypes, Operations are the concrete values a binding may hold.
var (
	ResourceTypes = []ResourceType{ResourceTopic, ResourceGroup, ResourceCluster, ResourceTransactionalID}
	Operations    = []Operation{OpAll, OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe,
		OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite}
)

// HostOf is the host a binding names for a caller at addr ("host:port", as
// net.Addr.String and http.Request.RemoteAddr give it): its IP address,
// IPv4 in dotted form even when mapped into IPv6.
func HostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			return v4.String()
		}
		return ip.String()
	}
	return host
}
