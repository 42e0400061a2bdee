// Package acl is the authorizer: Kafka's access control lists and the pure
// decision of whether a principal may perform an operation on a resource.
//
// A Binding is one ACL as Kafka's CreateAcls sends it: a resource pattern
// (type, name, LITERAL or PREFIXED), a principal ("User:alice", or "User:*"
// for every user), a host ("*" or one IP address), an operation and a
// permission (ALLOW or DENY). The numeric codes of the enums are Kafka's own,
// since they are also how the bindings are stored in the metadata group.
//
// A Set is an immutable index of bindings. Authorizer.Authorize decides as
// Kafka's StandardAuthorizer does:
//
//   - a super user is allowed everything;
//   - the bindings that apply to a resource are its LITERAL ones, the LITERAL
//     wildcard "*" of its type and the PREFIXED ones whose name starts its name;
//   - a DENY of the principal (or User:*), from its host (or *), for the
//     operation (or ALL) wins over every ALLOW;
//   - an ALLOW of the operation, of an operation implying it (DESCRIBE is
//     implied by READ, WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by
//     ALTER_CONFIGS) or of ALL allows it;
//   - otherwise it is refused, unless AllowEveryoneIfNoACL is set and no
//     binding at all applies to the resource.
//
// A Filter selects bindings for DescribeAcls and DeleteAcls, with Kafka's
// ANY wildcards and the MATCH pattern type (every pattern that applies to a
// name). Everything here is pure: no clock, no I/O.
package acl
