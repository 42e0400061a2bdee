package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newUserListCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users and their SCRAM mechanisms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				described, err := admin.DescribeUserSCRAMs(ctx)
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				for _, d := range described.Sorted() {
					var creds []string
					for _, c := range d.CredInfos {
						creds = append(creds, fmt.Sprintf("%s(%d)", c.Mechanism, c.Iterations))
					}
					sort.Strings(creds)
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", d.User, strings.Join(creds, ",")); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
