package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/internal/cli"
)

func newTopicDescribeCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's id, partitions, replicas, offsets and non-default configs",
		Long: `Show a topic's id and, for each partition, its leader, leader epoch, replicas
(node ids, the preferred leader first), in-sync replicas, log start offset and
high watermark (the offset the next record will get), or OFFLINE and why when
the broker cannot serve it, then every
config whose value does not come from the defaults, with where it comes from.
Sensitive config values are not shown.`,
		Example: `  cairn topic describe orders`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				description, err := describeTopic(ctx, admin, args[0])
				if err != nil {
					return err
				}
				return description.write(cmd.OutOrStdout())
			})
		},
	}
}

// topicDescription is everything describe prints, gathered before printing
// so a failed lookup prints nothing.
type topicDescription struct {
	detail  kadm.TopicDetail
	starts  map[int32]kadm.ListedOffset
	ends    map[int32]kadm.ListedOffset
	listErr error // why partitions may be missing from starts and ends
	configs []kadm.Config
}

func describeTopic(ctx context.Context, admin *kadm.Client, name string) (topicDescription, error) {
	topics, err := admin.ListTopics(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	detail, found := topics[name]
	if !found {
		return topicDescription{}, fmt.Errorf("describe topic %q: no metadata returned", name)
	}
	if detail.Err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: %w", name, detail.Err)
	}
	// A partition the broker cannot serve (its own error, or no leader, which
	// fails the shard asked about it) is shown in its row; only a request
	// that failed otherwise fails the command.
	starts, startsErr := admin.ListStartOffsets(ctx, name)
	if err := unlessPartial(startsErr); err != nil {
		return topicDescription{}, fmt.Errorf("list start offsets of %q: %w", name, err)
	}
	ends, endsErr := admin.ListEndOffsets(ctx, name)
	if err := unlessPartial(endsErr); err != nil {
		return topicDescription{}, fmt.Errorf("list end offsets of %q: %w", name, err)
	}
	configs, err := admin.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe configs of %q: %w", name, err)
	}
	resource, err := configs.On(name, nil)
	if err == nil {
		err = cli.BrokerError(resource.Err, resource.ErrMessage)
	}
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe configs of %q: %w", name, err)
	}
	return topicDescription{
		detail:  detail,
		starts:  starts[name],
		ends:    ends[name],
		listErr: cmp.Or(startsErr, endsErr),
		configs: nonDefaultConfigs(resource.Configs),
	}, nil
}

// unlessPartial returns err unless it is kadm's report of failed shards,
// whose partitions are then missing from a result that is otherwise good.
func unlessPartial(err error) error {
	var shardErrs *kadm.ShardErrors
	if errors.As(err, &shardErrs) {
		return nil
	}
	return err
}

// offline returns why the broker cannot serve a partition (its metadata
// error, or the error listing its offsets), or nil.
func (d topicDescription) offline(partition kadm.PartitionDetail) error {
	if partition.Err != nil {
		return partition.Err
	}
	start, startListed := d.starts[partition.Partition]
	end, endListed := d.ends[partition.Partition]
	if (!startListed || !endListed) && d.listErr != nil {
		return d.listErr
	}
	if end.Err != nil {
		return end.Err
	}
	return start.Err
}

func nonDefaultConfigs(configs []kadm.Config) []kadm.Config {
	var kept []kadm.Config
	for _, config := range configs {
		if config.Source != kmsg.ConfigSourceDefaultConfig {
			kept = append(kept, config)
		}
	}
	return kept
}

func (d topicDescription) write(out io.Writer) error {
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(table, "topic:\t%s\n", d.detail.Topic)
	fmt.Fprintf(table, "id:\t%s\n", formatTopicID(d.detail.ID))
	fmt.Fprintf(table, "partitions:\t%d\n", len(d.detail.Partitions))
	if err := table.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(table, "PARTITION\tLEADER\tLEADER-EPOCH\tREPLICAS\tIN-SYNC\tLOG-START-OFFSET\tHIGH-WATERMARK")
	offline := 0
	for _, partition := range d.detail.Partitions.Sorted() {
		fmt.Fprintf(table, "%d\t%d\t%d\t%s\t%s\t", partition.Partition, partition.Leader, partition.LeaderEpoch,
			nodeList(partition.Replicas), nodeList(partition.ISR))
		if reason := d.offline(partition); reason != nil {
			offline++
			fmt.Fprintf(table, "-\t-\tOFFLINE: %v\n", reason)
			continue
		}
		fmt.Fprintf(table, "%d\t%d\n", d.starts[partition.Partition].Offset, d.ends[partition.Partition].Offset)
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if offline > 0 {
		fmt.Fprintf(out, "%d of %d partitions offline: the broker cannot serve them; its log says why\n",
			offline, len(d.detail.Partitions))
	}
	fmt.Fprintln(out)
	if len(d.configs) == 0 {
		_, err := fmt.Fprintln(out, "no non-default configs")
		return err
	}
	fmt.Fprintln(table, "CONFIG\tVALUE\tSOURCE")
	for _, config := range d.configs {
		value := config.MaybeValue()
		if config.Sensitive {
			value = "(sensitive)"
		}
		fmt.Fprintf(table, "%s\t%s\t%s\n", config.Key, value, config.Source)
	}
	return table.Flush()
}

// nodeList prints node ids as Kafka's tools do, comma-separated ("1,2,3");
// "-" for none.
func nodeList(nodes []int32) string {
	if len(nodes) == 0 {
		return "-"
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = strconv.Itoa(int(n))
	}
	return strings.Join(ids, ",")
}
