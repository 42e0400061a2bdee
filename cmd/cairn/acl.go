package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
)

func newACLCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Add, list and remove access control lists",
		Long: `Add, list and remove the ACLs a server started with --authorizer checks every
Kafka and event-store request against (Kafka's CreateAcls, DescribeAcls and
DeleteAcls, so any Kafka cluster works too). Changing ACLs needs Alter on the
cluster, listing them Describe on the cluster, or a super user.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.AddCommand(
		newACLAddCommand(&connection),
		newACLListCommand(&connection),
		newACLRemoveCommand(&connection),
	)
	return cmd
}

// withKafkaClient runs fn with a client and a context bounded by --timeout
// and ended by an interrupt.
func withKafkaClient(cmd *cobra.Command, connection *clientFlags, fn func(context.Context, *kgo.Client) error) error {
	client, err := connection.newClient()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := commandContext(cmd, connection.timeout)
	defer cancel()
	stopClosing := context.AfterFunc(ctx, client.Close)
	defer stopClosing()
	return stopError(ctx, fn(ctx, client))
}

// aclFlags are the flags naming bindings: the resource, the principal, the
// host, the operations and the permission.
type aclFlags struct {
	principal       string
	host            string
	operations      []string
	topic           string
	group           string
	transactionalID string
	cluster         bool
	prefixed        bool
	deny            bool
	allow           bool
	pattern         string
}

func (f *aclFlags) register(flags *pflag.FlagSet, filter bool) {
	flags.StringVar(&f.principal, "principal", "", "principal as TYPE:NAME, e.g. User:alice (User:* is every user)")
	flags.StringSliceVar(&f.operations, "operation", nil,
		"operations: Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All (comma-separated or repeated)")
	flags.StringVar(&f.topic, "topic", "", "the topic (or topic prefix with --prefixed; * is every topic)")
	flags.StringVar(&f.group, "group", "", "the consumer group (or prefix with --prefixed; * is every group)")
	flags.StringVar(&f.transactionalID, "transactional-id", "", "the transactional id (or prefix with --prefixed)")
	flags.BoolVar(&f.cluster, "cluster", false, "the cluster itself")
	flags.BoolVar(&f.prefixed, "prefixed", false, "the name is a prefix (PREFIXED pattern) rather than a literal name")
	flags.BoolVar(&f.deny, "deny", false, "a DENY binding (it wins over every ALLOW)")
	if filter {
		flags.StringVar(&f.host, "host", "", "only bindings of this host (* or an IP address)")
		flags.BoolVar(&f.allow, "allow", false, "only ALLOW bindings")
		flags.StringVar(&f.pattern, "pattern", "", "pattern of the name: literal, prefixed, match (every binding that applies to the name) or any (default: any, or prefixed with --prefixed)")
		return
	}
	flags.StringVar(&f.host, "host", acl.Wildcard, "the host the principal connects from: * or an IP address")
}

// resource is the resource the flags name: at most one; none is "" and
// ResourceAny.
func (f *aclFlags) resource() (acl.ResourceType, string, error) {
	var typ acl.ResourceType = acl.ResourceAny
	name, named := "", 0
	for _, r := range []struct {
		set  bool
		typ  acl.ResourceType
		name string
	}{
		{f.topic != "", acl.ResourceTopic, f.topic},
		{f.group != "", acl.ResourceGroup, f.group},
		{f.transactionalID != "", acl.ResourceTransactionalID, f.transactionalID},
		{f.cluster, acl.ResourceCluster, acl.ClusterName},
	} {
		if r.set {
			typ, name, named = r.typ, r.name, named+1
		}
	}
	if named > 1 {
		return 0, "", errors.New("name one resource: --topic, --group, --transactional-id or --cluster")
	}
	return typ, name, nil
}

// bindings are the ACLs `acl add` creates: one per operation.
func (f *aclFlags) bindings() ([]acl.Binding, error) {
	typ, name, err := f.resource()
	if err != nil {
		return nil, err
	}
	if typ == acl.ResourceAny {
		return nil, errors.New("name the resource: --topic, --group, --transactional-id or --cluster")
	}
	if _, err := auth.ParsePrincipal(f.principal); err != nil {
		return nil, fmt.Errorf("--principal: %w", err)
	}
	if len(f.operations) == 0 {
		return nil, errors.New("name at least one --operation")
	}
	pattern, permission := acl.PatternLiteral, acl.PermissionAllow
	if f.prefixed {
		pattern = acl.PatternPrefixed
	}
	if f.deny {
		permission = acl.PermissionDeny
	}
	var out []acl.Binding
	for _, o := range f.operations {
		op, err := acl.ParseOperation(o)
		if err != nil {
			return nil, fmt.Errorf("--operation: %w", err)
		}
		b := acl.Binding{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: f.principal,
			Host: f.host, Operation: op, Permission: permission}
		if err := acl.Validate(b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// filters are the selections of `acl list` and `acl remove`: one per
// operation named, or one for any operation.
func (f *aclFlags) filters() ([]acl.Filter, error) {
	typ, name, err := f.resource()
	if err != nil {
		return nil, err
	}
	if f.deny && f.allow {
		return nil, errors.New("--allow and --deny exclude each other")
	}
	pattern := acl.PatternAny
	switch {
	case f.pattern != "":
		if pattern, err = acl.ParsePatternType(f.pattern); err != nil {
			return nil, fmt.Errorf("--pattern: %w", err)
		}
	case f.prefixed:
		pattern = acl.PatternPrefixed
	}
	permission := acl.PermissionAny
	if f.deny {
		permission = acl.PermissionDeny
	} else if f.allow {
		permission = acl.PermissionAllow
	}
	base := acl.Filter{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: f.principal,
		Host: f.host, Operation: acl.OpAny, Permission: permission}
	if len(f.operations) == 0 {
		return []acl.Filter{base}, acl.ValidateFilter(base)
	}
	var out []acl.Filter
	for _, o := range f.operations {
		op, err := acl.ParseOperation(o)
		if err != nil {
			return nil, fmt.Errorf("--operation: %w", err)
		}
		f := base
		f.Operation = op
		if err := acl.ValidateFilter(f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// formatBinding is one line of `acl list` and `acl remove`.
func formatBinding(b acl.Binding) string {
	return strings.Join([]string{b.ResourceType.String(), b.PatternType.String(), b.ResourceName, b.Principal,
		b.Host, b.Operation.String(), b.Permission.String()}, "\t")
}

// optional is s as a Kafka nullable string: empty is null (any).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// principalsValue is --super-users: TYPE:NAME,... parsed by auth.ParsePrincipal.
type principalsValue struct {
	principals *[]auth.Principal
	raw        string
}

func (v *principalsValue) String() string { return v.raw }

func (v *principalsValue) Set(s string) error {
	var out []auth.Principal
	for _, part := range strings.Split(s, ",") {
		p, err := auth.ParsePrincipal(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		out = append(out, p)
	}
	*v.principals, v.raw = out, s
	return nil
}

func (v *principalsValue) Type() string { return "list" }
