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

func newACLAddCommand(connection *clientFlags) *cobra.Command {
	var f aclFlags
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Allow (or with --deny, deny) a principal operations on a resource",
		Long: `Add one ACL per --operation for --principal on the resource named by --topic,
--group, --transactional-id or --cluster. With --prefixed the name is a
prefix; with --deny the ACL denies, which wins over every allow. Adding an
ACL that exists already changes nothing.`,
		Example: `  cairn acl add --principal User:bob --operation Write --topic orders
  cairn acl add --principal User:bob --operation Read,Describe --topic orders- --prefixed
  cairn acl add --principal User:* --operation Read --group analytics
  cairn acl add --principal User:mallory --operation All --topic '*' --deny --host 10.0.0.9`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bindings, err := f.bindings()
			if err != nil {
				return err
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				return addACLs(ctx, cmd, client, bindings)
			})
		},
	}
	f.register(cmd.Flags(), false)
	return cmd
}

func addACLs(ctx context.Context, cmd *cobra.Command, client *kgo.Client, bindings []acl.Binding) error {
	req := kmsg.NewPtrCreateACLsRequest()
	for _, b := range bindings {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
		c.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
		c.Principal, c.Host = b.Principal, b.Host
		c.Operation, c.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	if len(resp.Results) != len(bindings) {
		return fmt.Errorf("create ACLs: %d answers for %d ACLs", len(resp.Results), len(bindings))
	}
	var failures []string
	for i, r := range resp.Results {
		if err := cli.BrokerError(kerr.ErrorForCode(r.ErrorCode), deref(r.ErrorMessage)); err != nil {
			failures = append(failures, fmt.Sprintf("add %s: %v", formatBinding(bindings[i]), err))
			continue
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "added\t%s\n", formatBinding(bindings[i])); err != nil {
			return err
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
