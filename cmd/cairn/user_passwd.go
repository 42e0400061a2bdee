package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/auth/sasl"
)

func newUserPasswdCommand(connection *clientFlags) *cobra.Command {
	var password, mechanism string
	var iterations int32
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password",
		Long: `Replace the user's credential of every mechanism it has (or of --mechanism)
with one for the new password.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			if password == "" {
				return errors.New("--password is required (or CAIRN_PASSWORD)")
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				infos, err := describeUser(ctx, admin, user)
				if err != nil {
					return err
				}
				var mechanisms []kadm.ScramMechanism
				if mechanism != "" {
					m, err := scramMechanism(mechanism)
					if err != nil {
						return err
					}
					mechanisms = append(mechanisms, m)
				} else {
					for _, info := range infos {
						mechanisms = append(mechanisms, info.Mechanism)
					}
				}
				if err := upsertUser(ctx, admin, user, password, iterations, mechanisms); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "changed the password of %s\n", user)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&password, "password", "", "the new password (better in CAIRN_PASSWORD than on the command line)")
	f.StringVar(&mechanism, "mechanism", "", "change only this mechanism's credential (default: every one the user has)")
	f.Int32Var(&iterations, "iterations", sasl.IterationsDefault, "SCRAM iterations, 4096 to 16384")
	return cmd
}
