package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/internal/cli"
)

func newUserDeleteCommand(connection *clientFlags) *cobra.Command {
	var mechanism string
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user (every credential, or one mechanism's)",
		Long: `Delete a user's SCRAM credentials: all of them, or with --mechanism only that
one. Connections it has open stay authenticated until they close or, with
--sasl-session-lifetime on the server, until they must re-authenticate.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				infos, err := describeUser(ctx, admin, user)
				if err != nil {
					return err
				}
				var deletions []kadm.DeleteSCRAM
				for _, info := range infos {
					if mechanism == "" || strings.EqualFold(info.Mechanism.String(), mechanism) {
						deletions = append(deletions, kadm.DeleteSCRAM{User: user, Mechanism: info.Mechanism})
					}
				}
				if len(deletions) == 0 {
					return fmt.Errorf("user %q has no %s credential", user, mechanism)
				}
				altered, err := admin.AlterUserSCRAMs(ctx, deletions, nil)
				if err != nil {
					return fmt.Errorf("delete user %q: %w", user, err)
				}
				if a := altered[user]; a.Err != nil {
					return fmt.Errorf("delete user %q: %w", user, cli.BrokerError(a.Err, a.ErrMessage))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", user)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&mechanism, "mechanism", "", "delete only this mechanism's credential")
	return cmd
}
