package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/internal/cli"
)

func newTopicAlterConfigCommand(connection *clientFlags) *cobra.Command {
	var sets, deletes []string
	var forceLeaveStream bool
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Set or remove topic configs",
		Long: `Change a topic's configs in one incremental request: --set key=value sets a
config, --delete key removes the topic's own value so the default applies again.
Configs not named are left as they are. The broker validates every change, and
if it refuses one, none is applied.

An event store (cleanup.policy=stream) stays one unless --force-leave-stream
confirms the change of policy: its events would no longer be checked, and
retention or compaction would remove them. Its stream index is kept, so the
revisions stay if the topic becomes an event store again.`,
		Example: `  cairn topic alter-config orders --set retention.ms=86400000
  cairn topic alter-config orders --set cleanup.policy=compact --delete retention.bytes
  cairn topic alter-config events --set cleanup.policy=delete --force-leave-stream`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alterations, err := configAlterations(sets, deletes)
			if err != nil {
				return err
			}
			if forceLeaveStream {
				alterations = append(alterations, kadm.AlterConfig{Op: kadm.SetConfig,
					Name: cluster.ForceLeaveStreamConfig, Value: kadm.StringPtr("true")})
			}
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				return alterTopicConfig(ctx, cmd, admin, args[0], alterations)
			})
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "config to set, as key=value (repeatable)")
	cmd.Flags().StringArrayVar(&deletes, "delete", nil, "config key to remove (repeatable)")
	cmd.Flags().BoolVar(&forceLeaveStream, "force-leave-stream", false,
		"confirm a change that takes an event store out of cleanup.policy=stream")
	return cmd
}

// configAlterations turns --set and --delete into incremental operations,
// refusing an empty or contradictory request before it reaches the broker.
func configAlterations(sets, deletes []string) ([]kadm.AlterConfig, error) {
	if len(sets) == 0 && len(deletes) == 0 {
		return nil, fmt.Errorf("nothing to change: give --set key=value or --delete key")
	}
	values, err := cli.ParseConfigs(sets)
	if err != nil {
		return nil, fmt.Errorf("--set: %w", err)
	}
	var alterations []kadm.AlterConfig
	for _, pair := range sets { // flag order, not map order, so the request is reproducible
		key, _, _ := strings.Cut(pair, "=")
		alterations = append(alterations, kadm.AlterConfig{Op: kadm.SetConfig, Name: key, Value: values[key]})
	}
	deleted := make(map[string]bool, len(deletes))
	for _, key := range deletes {
		if key == "" {
			return nil, fmt.Errorf("--delete: empty config key")
		}
		if _, set := values[key]; set {
			return nil, fmt.Errorf("config %q is both set and deleted", key)
		}
		if deleted[key] {
			continue
		}
		deleted[key] = true
		alterations = append(alterations, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: key})
	}
	return alterations, nil
}

func alterTopicConfig(ctx context.Context, cmd *cobra.Command, admin *kadm.Client, name string, alterations []kadm.AlterConfig) error {
	responses, err := admin.AlterTopicConfigs(ctx, alterations, name)
	if err != nil {
		return fmt.Errorf("alter configs of topic %q: %w", name, err)
	}
	response, err := responses.On(name, nil)
	if err == nil {
		err = cli.BrokerError(response.Err, response.ErrMessage)
	}
	if err != nil {
		return fmt.Errorf("alter configs of topic %q: %w", name, err)
	}
	out := cmd.OutOrStdout()
	for _, alteration := range alterations {
		if alteration.Name == cluster.ForceLeaveStreamConfig {
			continue // a confirmation, not a config
		}
		if alteration.Op == kadm.SetConfig {
			fmt.Fprintf(out, "set %s=%s on topic %s\n", alteration.Name, *alteration.Value, name)
		} else {
			fmt.Fprintf(out, "deleted %s from topic %s\n", alteration.Name, name)
		}
	}
	return nil
}
