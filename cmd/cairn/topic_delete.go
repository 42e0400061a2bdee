package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/internal/cli"
)

func newTopicDeleteCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics",
		Long: `Delete one or more topics and all their records. Each topic is reported on its
own line; if any could not be deleted, the command exits 1 and names them.`,
		Example: `  cairn topic delete orders
  cairn topic delete scratch-1 scratch-2`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				return deleteTopics(ctx, cmd, admin, args)
			})
		},
	}
}

func deleteTopics(ctx context.Context, cmd *cobra.Command, admin *kadm.Client, names []string) error {
	responses, err := admin.DeleteTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var failures []string
	for _, name := range names {
		response, found := responses[name]
		err := response.Err
		if !found {
			err = errors.New("no answer from the broker for this topic")
		} else {
			err = cli.BrokerError(err, response.ErrMessage)
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("delete topic %q: %v", name, err))
			continue
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", name); err != nil {
			return err
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}
