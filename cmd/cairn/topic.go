package main

import (
	"context"
	"encoding/base64"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTopicCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, configure and delete topics",
		Long: `Create, list, describe, configure and delete topics on any cluster that speaks
the Kafka protocol. Errors the broker returns (TOPIC_ALREADY_EXISTS,
INVALID_CONFIG and its message, ...) are printed and the command exits 1.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.AddCommand(
		newTopicCreateCommand(&connection),
		newTopicListCommand(&connection),
		newTopicDescribeCommand(&connection),
		newTopicDeleteCommand(&connection),
		newTopicAlterConfigCommand(&connection),
	)
	return cmd
}

// withAdmin runs fn with an admin client and a context bounded by --timeout
// and ended by an interrupt.
func withAdmin(cmd *cobra.Command, connection *clientFlags, fn func(context.Context, *kadm.Client) error) error {
	admin, client, err := connection.newAdmin()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := commandContext(cmd, connection.timeout)
	defer cancel()
	// A request stuck on a dial or a silent broker may outlive its context;
	// closing the client ends it.
	stopClosing := context.AfterFunc(ctx, client.Close)
	defer stopClosing()
	return stopError(ctx, fn(ctx, admin))
}

// formatTopicID writes a topic id the way Kafka's own tools do: URL-safe
// base64 without padding.
func formatTopicID(id kadm.TopicID) string {
	if id == (kadm.TopicID{}) {
		return "none"
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}
