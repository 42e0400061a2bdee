package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/internal/cli"
)

func newUserCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list and delete SASL users and change their passwords",
		Long: `Manage the users a listener started with --sasl-mechanisms authenticates:
SCRAM credentials (salted and iterated; the password itself is never stored)
kept in the cluster's metadata, also checked for PLAIN logins. Against a
running cluster the commands use the Kafka APIs AlterUserScramCredentials and
DescribeUserScramCredentials, authenticating with --sasl-mechanism,
--sasl-user and --sasl-password when the listener requires it. The first
user is created with --data-dir on a stopped node: see "user create".`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.PersistentFlags().StringSliceVar(&connection.brokers, "bootstrap-server", []string{"127.0.0.1:9092"},
		"the same as --brokers, under the name Kafka's tools use")
	cmd.AddCommand(
		newUserCreateCommand(&connection),
		newUserListCommand(&connection),
		newUserDeleteCommand(&connection),
		newUserPasswdCommand(&connection),
	)
	return cmd
}

// scramMechanism reads --mechanism.
func scramMechanism(name string) (kadm.ScramMechanism, error) {
	switch strings.ToUpper(name) {
	case sasl.ScramSHA256:
		return kadm.ScramSha256, nil
	case sasl.ScramSHA512:
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("--mechanism %q: want %s or %s", name, sasl.ScramSHA256, sasl.ScramSHA512)
}

// upsertUser sets user's credential for each mechanism with password.
func upsertUser(ctx context.Context, admin *kadm.Client, user, password string, iterations int32, mechanisms []kadm.ScramMechanism) error {
	var upserts []kadm.UpsertSCRAM
	for _, m := range mechanisms {
		upserts = append(upserts, kadm.UpsertSCRAM{User: user, Mechanism: m, Iterations: iterations, Password: password})
	}
	altered, err := admin.AlterUserSCRAMs(ctx, nil, upserts)
	if err != nil {
		return fmt.Errorf("set the password of %q: %w", user, err)
	}
	if a := altered[user]; a.Err != nil {
		return fmt.Errorf("set the password of %q: %w", user, cli.BrokerError(a.Err, a.ErrMessage))
	}
	return nil
}

// describeUser returns user's credentials; a user without any is an error.
func describeUser(ctx context.Context, admin *kadm.Client, user string) ([]kadm.CredInfo, error) {
	described, err := admin.DescribeUserSCRAMs(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("describe user %q: %w", user, err)
	}
	d, ok := described[user]
	switch {
	case !ok || errors.Is(d.Err, kerr.ResourceNotFound):
		return nil, fmt.Errorf("no user %q", user)
	case d.Err != nil:
		return nil, fmt.Errorf("describe user %q: %w", user, cli.BrokerError(d.Err, d.ErrMessage))
	}
	return d.CredInfos, nil
}
