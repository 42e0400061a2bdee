package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/internal/cli"
)

func newACLListCommand(connection *clientFlags) *cobra.Command {
	var f aclFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List ACLs, all or those the filters select",
		Long: `List the ACLs, one a line: resource type, pattern, name, principal, host,
operation, permission. Every flag narrows the list; --pattern match with a
name lists every ACL that applies to that name (its literal ACLs, the
wildcard * and the prefixes of it).`,
		Example: `  cairn acl list
  cairn acl list --principal User:bob
  cairn acl list --topic orders --pattern match`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := f.filters()
			if err != nil {
				return err
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				for _, filter := range filters {
					bindings, err := describeACLs(ctx, client, filter)
					if err != nil {
						return err
					}
					for _, b := range bindings {
						if _, err := fmt.Fprintln(cmd.OutOrStdout(), formatBinding(b)); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	f.register(cmd.Flags(), true)
	return cmd
}

func describeACLs(ctx context.Context, client *kgo.Client, f acl.Filter) ([]acl.Binding, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourceName = kmsg.ACLResourceType(f.ResourceType), optional(f.ResourceName)
	req.ResourcePatternType = kmsg.ACLResourcePatternType(f.PatternType)
	req.Principal, req.Host = optional(f.Principal), optional(f.Host)
	req.Operation, req.PermissionType = kmsg.ACLOperation(f.Operation), kmsg.ACLPermissionType(f.Permission)
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	if err := cli.BrokerError(kerr.ErrorForCode(resp.ErrorCode), deref(resp.ErrorMessage)); err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	var out []acl.Binding
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			out = append(out, acl.Binding{ResourceType: acl.ResourceType(r.ResourceType), ResourceName: r.ResourceName,
				PatternType: acl.PatternType(r.ResourcePatternType), Principal: a.Principal, Host: a.Host,
				Operation: acl.Operation(a.Operation), Permission: acl.Permission(a.PermissionType)})
		}
	}
	return out, nil
}
