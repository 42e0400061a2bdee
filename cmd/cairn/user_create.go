package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/internal/cli"
	"github.com/cairnlog/cairn/storage/vfs"
)

func newUserCreateCommand(connection *clientFlags) *cobra.Command {
	var password, mechanism, dataDir string
	var iterations int32
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user",
		Long: `Create a user with a SCRAM credential for --mechanism (it also logs in with
PLAIN when the listener offers it).

With --data-dir the credential is staged in the data directory of a stopped
node (a new directory is created): the node proposes it to the cluster's
metadata when it next starts, before it serves Kafka clients. That is how the
first user of a cluster that requires SASL is made. A running node holds
the directory's lock, and the command refuses; use --brokers then.

--data-dir counts only on the command line: CAIRN_DATA_DIR, unlike the
variables of other flags, is ignored here, so a variable set for cairn serve
does not turn a request to the running cluster into staging.`,
		Example: `  # the first user, before the first start
  cairn user create admin --password "$ADMIN_PASSWORD" --data-dir /var/lib/cairn
  cairn serve --data-dir /var/lib/cairn --sasl-mechanisms SCRAM-SHA-512,PLAIN

  # more users, through the running cluster
  cairn user create alice --password "$ALICE_PASSWORD" \
    --sasl-mechanism SCRAM-SHA-512 --sasl-user admin --sasl-password "$ADMIN_PASSWORD"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := scramMechanism(mechanism)
			if err != nil {
				return err
			}
			if password == "" {
				return errors.New("--password is required (or CAIRN_PASSWORD)")
			}
			if dataDir != "" {
				return stageUser(cmd, dataDir, args[0], password, m.String(), iterations)
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				if _, err := describeUser(ctx, admin, args[0]); err == nil {
					return fmt.Errorf("user %q exists already: change its password with cairn user passwd", args[0])
				}
				if err := upsertUser(ctx, admin, args[0], password, iterations, []kadm.ScramMechanism{m}); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "created user %s (%s)\n", args[0], m)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&password, "password", "", "the user's password (better in CAIRN_PASSWORD than on the command line)")
	f.StringVar(&mechanism, "mechanism", sasl.ScramSHA512, "SCRAM mechanism of the credential: SCRAM-SHA-256 or SCRAM-SHA-512")
	f.Int32Var(&iterations, "iterations", sasl.IterationsDefault, "SCRAM iterations, 4096 to 16384")
	f.StringVar(&dataDir, "data-dir", "", "stage the user in this stopped node's data directory instead of asking a running cluster (command line only: CAIRN_DATA_DIR is ignored)")
	cli.CommandLineOnly(f, "data-dir")
	return cmd
}

// stageUser salts the password here and stages the credential in dataDir.
func stageUser(cmd *cobra.Command, dataDir, user, password, mechanism string, iterations int32) error {
	salt := make([]byte, 24)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("draw a salt: %w", err)
	}
	salted, err := sasl.SaltPassword(mechanism, password, salt, iterations)
	if err != nil {
		return err
	}
	if err := stageCredential(dataDir, user, mechanism, iterations, salt, salted); err != nil {
		return fmt.Errorf("stage user %q: %w", user, err)
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "staged user %s (%s) in %s: the node creates it when it starts\n", user, mechanism, dataDir)
	return err
}

// stageCredential stages a credential in a stopped node's data directory
// (cluster.StageUser), on the real filesystem.
func stageCredential(dataDir, user, mechanism string, iterations int32, salt, salted []byte) error {
	return cluster.StageUser(vfs.Default(), dataDir, user, mechanism, iterations, salt, salted)
}
