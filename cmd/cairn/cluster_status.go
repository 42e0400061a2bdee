package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClusterStatusCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the nodes, their states, the metadata leader and what each node leads",
		Long: `Show each node of the cluster with its state (JOINING while a node started
with --join catches up, ACTIVE, DRAINING while remove-node moves its replicas
off), Kafka address, rack, the partitions it
leads and those it holds a replica of, the metadata leader (the controller),
then the number of partitions, those under-replicated (fewer in-sync
replicas than replicas), those with no leader, and the moves running.`,
		Example: `  cairn cluster status --brokers 127.0.0.1:19092`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, connection, func(ctx context.Context, admin *kadm.Client, _ *kgo.Client) error {
				st, err := readStatus(ctx, admin)
				if err != nil {
					return err
				}
				return st.write(cmd.OutOrStdout())
			})
		},
	}
}

// nodeStateConfig is the read-only broker config naming a node's state.
const nodeStateConfig = "cairn.node.state"

// clusterStatus is what status prints, gathered before printing.
type clusterStatus struct {
	md         kadm.Metadata
	states     map[int32]string
	leads      map[int32]int
	replicas   map[int32]int
	partitions int
	under      int
	leaderless int
	moving     int
}

func readStatus(ctx context.Context, admin *kadm.Client) (clusterStatus, error) {
	md, err := admin.Metadata(ctx)
	if err != nil {
		return clusterStatus{}, fmt.Errorf("read the cluster's metadata: %w", err)
	}
	st := clusterStatus{md: md, states: map[int32]string{}, leads: map[int32]int{}, replicas: map[int32]int{}}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			st.partitions++
			if p.Leader >= 0 {
				st.leads[p.Leader]++
			} else {
				st.leaderless++
			}
			for _, r := range p.Replicas {
				st.replicas[r]++
			}
			if len(p.ISR) < len(p.Replicas) {
				st.under++
			}
		}
	}
	// Each node describes its own state; a node that cannot answer is
	// shown as "?".
	configs, err := admin.DescribeBrokerConfigs(ctx, brokerIDs(md)...)
	if err == nil {
		for _, rc := range configs {
			var id int32
			if _, err := fmt.Sscan(rc.Name, &id); err != nil {
				continue
			}
			for _, c := range rc.Configs {
				if c.Key == nodeStateConfig && c.Value != nil {
					st.states[id] = *c.Value
				}
			}
		}
	}
	listed, err := moving(ctx, admin)
	if err != nil {
		return clusterStatus{}, err
	}
	for _, ps := range listed {
		st.moving += len(ps)
	}
	return st, nil
}

func (st clusterStatus) write(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NODE\tSTATE\tKAFKA ADDRESS\tRACK\tLEADS\tREPLICAS\t\n")
	for _, b := range st.md.Brokers {
		rack, state, mark := "-", st.states[b.NodeID], ""
		if b.Rack != nil && *b.Rack != "" {
			rack = *b.Rack
		}
		if state == "" {
			state = "?"
		}
		if b.NodeID == st.md.Controller {
			mark = "metadata leader"
		}
		fmt.Fprintf(w, "%d\t%s\t%s:%d\t%s\t%d\t%d\t%s\n", b.NodeID, state, b.Host, b.Port, rack, st.leads[b.NodeID], st.replicas[b.NodeID], mark)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\npartitions %d, under-replicated %d, without a leader %d, moving %d\n",
		st.partitions, st.under, st.leaderless, st.moving)
	for _, b := range st.md.Brokers {
		// A node that joined holds nothing until add-node moves a share
		// onto it.
		if st.states[b.NodeID] == "ACTIVE" && st.replicas[b.NodeID] == 0 && st.partitions > 0 && err == nil {
			_, err = fmt.Fprintf(out, "node %d holds no replica: cairn cluster add-node %d moves a share onto it\n", b.NodeID, b.NodeID)
		}
	}
	return err
}
