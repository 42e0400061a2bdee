package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClusterMoveCommand(connection *clientFlags) *cobra.Command {
	var replicas []int32
	var cancel, noWait bool
	cmd := &cobra.Command{
		Use:   "move TOPIC PARTITION --replicas N,N,...",
		Short: "Move a partition's replicas to other nodes",
		Long: `Move a partition's replicas to the nodes listed (the first becomes the
preferred leader if the current one leaves). The new replicas copy the
partition from its leader (through its snapshot, with the data below it,
when retention or a cleaner already removed the first records), then the
replica set changes in one step, and the replicas no longer listed are
deleted. The command shows the move until it completes (or --timeout;
Ctrl-C stops the wait, not the move). --cancel stops a running move: the
partition returns to its replicas, and a wait elsewhere says so.`,
		Example: `  cairn cluster move orders 0 --replicas 2,3,4
  cairn cluster move orders 0 --cancel`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			index, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("partition %q: %w", args[1], err)
			}
			if cancel == (len(replicas) > 0) {
				return errors.New("give either --replicas or --cancel")
			}
			return withCluster(cmd, connection, func(ctx context.Context, admin *kadm.Client, _ *kgo.Client) error {
				return movePartition(ctx, cmd.OutOrStdout(), admin, args[0], int32(index), replicas, !noWait)
			})
		},
	}
	cmd.Flags().Int32SliceVar(&replicas, "replicas", nil, "the node ids to hold the partition, preferred leader first")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the partition's running move")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the move is recorded")
	return cmd
}

// movePartition asks for the move (nil target: its cancellation) and
// shows it until it completes.
func movePartition(ctx context.Context, out io.Writer, admin *kadm.Client, topic string, index int32, target []int32, wait bool) error {
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(topic, index, target)
	res, err := admin.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return fmt.Errorf("move %s-%d: %w", topic, index, err)
	}
	if r := res[topic][index]; r.Err != nil {
		return fmt.Errorf("move %s-%d: %w: %s", topic, index, r.Err, r.ErrMessage)
	}
	if target == nil {
		_, err := fmt.Fprintf(out, "cancelled the move of %s-%d\n", topic, index)
		return err
	}
	fmt.Fprintf(out, "moving %s-%d to nodes %v\n", topic, index, target)
	if !wait {
		return nil
	}
	last := ""
	err = poll(ctx, func() (bool, error) {
		listed, err := admin.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {index: {}}})
		if err != nil {
			return false, fmt.Errorf("follow the move: %w", err)
		}
		r, running := listed[topic][index]
		if !running {
			return true, nil
		}
		if line := fmt.Sprintf("  adding %v, removing %v", r.AddingReplicas, r.RemovingReplicas); line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	return checkMoved(ctx, out, admin, topic, index, target)
}

// checkMoved tells a completed move from a cancelled one by the replicas
// the partition ended with, read for up to strandedPolls polls: the broker
// answering Metadata may be a moment behind the one that listed the moves.
func checkMoved(ctx context.Context, out io.Writer, admin *kadm.Client, topic string, index int32, target []int32) error {
	var replicas []int32
	polls := 0
	err := poll(ctx, func() (bool, error) {
		md, err := admin.Metadata(ctx, topic)
		if err != nil {
			return false, fmt.Errorf("read %s's replicas: %w", topic, err)
		}
		p, ok := md.Topics[topic].Partitions[index]
		if !ok {
			return false, fmt.Errorf("%s-%d is gone", topic, index)
		}
		replicas = p.Replicas
		if slices.Equal(slices.Sorted(slices.Values(p.Replicas)), slices.Sorted(slices.Values(target))) {
			_, err := fmt.Fprintf(out, "moved %s-%d: replicas %v, leader %d\n", topic, index, p.Replicas, p.Leader)
			return true, err
		}
		polls++
		if polls >= strandedPolls {
			return false, fmt.Errorf("the move of %s-%d was cancelled: its replicas are %v",
				topic, index, replicas)
		}
		return false, nil
	})
	return err
}
