package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupDescribeCommand(connection *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's state, members and per-partition lag",
		Long: `Show a consumer group's state, protocol and members (member id, instance id,
client id, host and assigned partitions), then for every partition the group
has committed to or is assigned: the committed offset, the log end offset and
the lag between them. A partition without a commit shows "-" and no lag.`,
		Example: `  cairn group describe billing`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, connection, func(ctx context.Context, admin *kadm.Client) error {
				lags, err := admin.Lag(ctx, args[0])
				if err != nil {
					return fmt.Errorf("describe group %q: %w", args[0], err)
				}
				lag, found := lags[args[0]]
				switch {
				case !found:
					return fmt.Errorf("describe group %q: no answer from the broker", args[0])
				case lag.DescribeErr != nil:
					return fmt.Errorf("describe group %q: %w", args[0], lag.DescribeErr)
				case lag.FetchErr != nil:
					return fmt.Errorf("fetch offsets of group %q: %w", args[0], lag.FetchErr)
				case lag.State == "Dead" && lag.Lag.IsEmpty():
					return fmt.Errorf("describe group %q: %w", args[0], errors.New("no such group"))
				}
				return writeGroupLag(cmd.OutOrStdout(), lag)
			})
		},
	}
}

func writeGroupLag(out io.Writer, lag kadm.DescribedGroupLag) error {
	fmt.Fprintf(out, "group:     %s\nstate:     %s\nprotocol:  %s %s\nmembers:   %d\n", lag.Group, lag.State, lag.ProtocolType, lag.Protocol, len(lag.Members))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(lag.Members) > 0 {
		fmt.Fprintln(w, "\nMEMBER\tINSTANCE\tCLIENT\tHOST\tASSIGNED")
		for _, m := range lag.Members {
			instance := "-"
			if m.InstanceID != nil {
				instance = *m.InstanceID
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, instance, orDash(m.ClientID), m.ClientHost, assignedText(m))
		}
	}
	fmt.Fprintln(w, "\nTOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tMEMBER")
	for _, l := range lag.Lag.Sorted() {
		committed, lagText := "-", "-"
		if l.Commit.At >= 0 && l.Err == nil {
			committed, lagText = fmt.Sprint(l.Commit.At), fmt.Sprint(l.Lag)
		}
		member := "-"
		if l.Member != nil {
			member = l.Member.MemberID
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\n", l.Topic, l.Partition, committed, l.End.Offset, lagText, member)
	}
	return w.Flush()
}

// assignedText is a member's consumer assignment as topic:p,p topic:p.
func assignedText(m kadm.DescribedGroupMember) string {
	assigned, ok := m.Assigned.AsConsumer()
	if !ok || len(assigned.Topics) == 0 {
		return "-"
	}
	var parts []string
	for _, t := range assigned.Topics {
		partitions := append([]int32(nil), t.Partitions...)
		sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
		text := make([]string, len(partitions))
		for i, p := range partitions {
			text[i] = fmt.Sprint(p)
		}
		parts = append(parts, t.Topic+":"+strings.Join(text, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
