package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/internal/cli"
)

func newACLRemoveCommand(connection *clientFlags) *cobra.Command {
	var f aclFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove the ACLs the filters select",
		Long: `Remove every ACL the filters select (the flags of acl list) and print each one
removed. Without any filter it refuses, unless --all says to remove every ACL.`,
		Example: `  cairn acl remove --principal User:bob --topic orders --operation Write
  cairn acl remove --principal User:bob
  cairn acl remove --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := f.filters()
			if err != nil {
				return err
			}
			if !all && filters[0] == acl.MatchAll {
				return errors.New("no filter given: name what to remove, or pass --all to remove every ACL")
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				return removeACLs(ctx, cmd, client, filters)
			})
		},
	}
	f.register(cmd.Flags(), true)
	cmd.Flags().BoolVar(&all, "all", false, "remove every ACL (when no filter is given)")
	return cmd
}

func removeACLs(ctx context.Context, cmd *cobra.Command, client *kgo.Client, filters []acl.Filter) error {
	req := kmsg.NewPtrDeleteACLsRequest()
	for _, f := range filters {
		rf := kmsg.NewDeleteACLsRequestFilter()
		rf.ResourceType, rf.ResourceName = kmsg.ACLResourceType(f.ResourceType), optional(f.ResourceName)
		rf.ResourcePatternType = kmsg.ACLResourcePatternType(f.PatternType)
		rf.Principal, rf.Host = optional(f.Principal), optional(f.Host)
		rf.Operation, rf.PermissionType = kmsg.ACLOperation(f.Operation), kmsg.ACLPermissionType(f.Permission)
		req.Filters = append(req.Filters, rf)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return fmt.Errorf("delete ACLs: %w", err)
	}
	var failures []string
	for _, r := range resp.Results {
		if err := cli.BrokerError(kerr.ErrorForCode(r.ErrorCode), deref(r.ErrorMessage)); err != nil {
			failures = append(failures, fmt.Sprintf("remove ACLs: %v", err))
			continue
		}
		for _, m := range r.MatchingACLs {
			b := acl.Binding{ResourceType: acl.ResourceType(m.ResourceType), ResourceName: m.ResourceName,
				PatternType: acl.PatternType(m.ResourcePatternType), Principal: m.Principal, Host: m.Host,
				Operation: acl.Operation(m.Operation), Permission: acl.Permission(m.PermissionType)}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "removed\t%s\n", formatBinding(b)); err != nil {
				return err
			}
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}
