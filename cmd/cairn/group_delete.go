package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupDeleteCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete consumer groups and their committed offsets",
		Long: `Delete one or more consumer groups with their committed offsets. A group with
live members is refused (NON_EMPTY_GROUP): stop its consumers first. Each group
is reported on its own line; if any could not be deleted, the command exits 1
and names them.`,
		Example: `  cairn group delete old-billing`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				responses, err := admin.DeleteGroups(ctx, args...)
				if err != nil {
					return fmt.Errorf("delete groups: %w", err)
				}
				var failures []string
				for _, name := range args {
					response, found := responses[name]
					err := response.Err
					if !found {
						err = errors.New("no answer from the broker for this group")
					}
					if err != nil {
						failures = append(failures, fmt.Sprintf("delete group %q: %v", name, err))
						continue
					}
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", name); err != nil {
						return err
					}
				}
				if len(failures) > 0 {
					return errors.New(strings.Join(failures, "; "))
				}
				return nil
			})
		},
	}
}
