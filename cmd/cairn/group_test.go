package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// seedGroup creates topic orders (2 partitions, 5 records each) and commits
// offsets 1 and 3 for group billing.
func seedGroup(t *testing.T, brokers string) *kadm.Client {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	admin := kadm.NewClient(client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.CreateTopic(ctx, 2, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 5; i++ {
			if err := client.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	offsets := kadm.Offsets{}
	offsets.AddOffset("orders", 0, 1, -1)
	offsets.AddOffset("orders", 1, 3, -1)
	if err := admin.CommitAllOffsets(ctx, "billing", offsets); err != nil {
		t.Fatal(err)
	}
	return admin
}

func TestGroupCommands(t *testing.T) {
	_, brokers := startCluster(t)
	admin := seedGroup(t, brokers)

	if list := mustCairn(t, "group", "list", "--brokers", brokers).stdout; !regexp.MustCompile(`^billing\tEmpty\t\n$`).MatchString(list) {
		t.Errorf("list printed %q", list)
	}
	described := mustCairn(t, "group", "describe", "billing", "--brokers", brokers).stdout
	for _, want := range []string{"group:     billing", "state:     Empty", "TOPIC   PARTITION  COMMITTED  LOG-END  LAG  MEMBER"} {
		if !strings.Contains(described, want) {
			t.Errorf("describe lacks %q:\n%s", want, described)
		}
	}
	if rows := regexp.MustCompile(`(?m)^orders\s+(0\s+1\s+5\s+4|1\s+3\s+5\s+2)\s+-$`).FindAllString(described, -1); len(rows) != 2 {
		t.Errorf("want lag rows 0:1/5/4 and 1:3/5/2 in:\n%s", described)
	}

	dry := mustCairn(t, "group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--dry-run", "--brokers", brokers).stdout
	if !regexp.MustCompile(`(?m)^orders\s+0\s+1\s+0$`).MatchString(dry) || !regexp.MustCompile(`(?m)^orders\s+1\s+3\s+0$`).MatchString(dry) {
		t.Errorf("dry run printed:\n%s", dry)
	}
	fetched, _ := admin.FetchOffsets(context.Background(), "billing")
	if o, _ := fetched.Lookup("orders", 1); o.At != 3 {
		t.Errorf("dry run committed: partition 1 at %d", o.At)
	}
	for _, c := range []struct {
		args []string
		want [2]int64
	}{
		{[]string{"--to-latest"}, [2]int64{5, 5}},
		{[]string{"--to-offset", "2"}, [2]int64{2, 2}},
		{[]string{"--to-offset", "99"}, [2]int64{5, 5}},
		{[]string{"--to-earliest"}, [2]int64{0, 0}},
		{[]string{"--to-datetime", "2099-01-01T00:00:00Z"}, [2]int64{5, 5}},
	} {
		mustCairn(t, append([]string{"group", "reset-offsets", "billing", "--topic", "orders", "--brokers", brokers}, c.args...)...)
		fetched, _ := admin.FetchOffsets(context.Background(), "billing")
		for p, want := range c.want {
			if o, _ := fetched.Lookup("orders", int32(p)); o.At != want {
				t.Errorf("reset %v: partition %d at %d, want %d", c.args, p, o.At, want)
			}
		}
	}
	if r := cairn(t, "group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--to-latest", "--brokers", brokers); r.err == nil {
		t.Error("two targets accepted")
	}

	if r := mustCairn(t, "group", "delete", "billing", "--brokers", brokers); r.stdout != "deleted group billing\n" {
		t.Errorf("delete printed %q", r.stdout)
	}
	if r := cairn(t, "group", "delete", "billing", "--brokers", brokers); r.err == nil || !strings.Contains(r.err.Error(), "GROUP_ID_NOT_FOUND") {
		t.Errorf("deleting again: %v", r.err)
	}
}

// TestGroupResetRefusedWhileMembersLive proves reset-offsets refuses a
// group whose consumers are running, as Kafka's tool does.
func TestGroupResetRefusedWhileMembersLive(t *testing.T) {
	_, brokers := startCluster(t)
	seedGroup(t, brokers)
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	consumer.PollFetches(ctx) // joins the group
	r := cairn(t, "group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--brokers", brokers)
	if !errors.Is(r.err, errGroupActive) {
		t.Fatalf("reset with a live member: %v, want %v", r.err, errGroupActive)
	}
	described := mustCairn(t, "group", "describe", "billing", "--brokers", brokers).stdout
	if !strings.Contains(described, "orders:0,1") {
		t.Errorf("describe does not show the member's assignment:\n%s", described)
	}
}

// TestGroupResetOffsetsSaysWhetherItApplied proves that the output of a
// reset tells a dry run from a committed one: the same table, then a line
// saying which happened.
func TestGroupResetOffsetsSaysWhetherItApplied(t *testing.T) {
	_, brokers := startCluster(t)
	seedGroup(t, brokers)
	reset := []string{"group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--brokers", brokers}
	dry := mustCairn(t, append(reset, "--dry-run")...).stdout
	if !strings.Contains(dry, "dry run: nothing committed") {
		t.Errorf("dry run does not say nothing was committed:\n%s", dry)
	}
	applied := mustCairn(t, reset...).stdout
	if !strings.Contains(applied, "committed 2 offsets for group billing") || strings.Contains(applied, "dry run") {
		t.Errorf("applied reset does not say it committed:\n%s", applied)
	}
}
