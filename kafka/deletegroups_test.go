package kafka

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestGroupDeletionsReportStorageFailures proves a client whose DeleteGroups
// or OffsetDelete tombstones cannot be written or synced is told so, instead
// of being told the deletion is done.
func TestGroupDeletionsReportStorageFailures(t *testing.T) {
	faults := []struct {
		name string
		rule vfs.Rule
	}{
		{"write", vfs.Rule{Op: vfs.OpWrite, PathContains: groups.OffsetsTopic, Err: syscall.ENOSPC}},
		{"sync", vfs.Rule{Op: vfs.OpSync, PathContains: groups.OffsetsTopic, Err: syscall.EIO}},
	}
	requests := []struct {
		name string
		run  func(ctx context.Context, admin *kadm.Client) error
	}{
		{"DeleteGroups", func(ctx context.Context, admin *kadm.Client) error {
			resps, err := admin.DeleteGroups(ctx, "g")
			if err != nil {
				return err
			}
			return resps["g"].Err
		}},
		{"OffsetDelete", func(ctx context.Context, admin *kadm.Client) error {
			resps, err := admin.DeleteOffsets(ctx, "g", kadm.TopicsSet{"a": {0: {}}})
			if err != nil {
				return err
			}
			return resps.Error()
		}},
	}
	for _, fault := range faults {
		for _, request := range requests {
			t.Run(request.name+"/"+fault.name, func(t *testing.T) {
				efs := vfs.NewErrorFS(vfs.NewMem())
				ts := startServerFS(t, efs, fastGroups)
				if _, err := ts.cluster.CreateTopic("a", 1, nil, false); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				// The client retries KAFKA_STORAGE_ERROR (it is retriable)
				// until this timeout, then reports it.
				admin := kadm.NewClient(ts.client(t, kgo.RetryTimeout(time.Second)))
				offsets := kadm.Offsets{}
				offsets.AddOffset("a", 0, 3, -1)
				if err := admin.CommitAllOffsets(ctx, "g", offsets); err != nil {
					t.Fatal(err)
				}
				efs.Inject(fault.rule)
				if err := request.run(ctx, admin); err != kerr.KafkaStorageError {
					t.Fatalf("%s with a failing %s: %v, want KAFKA_STORAGE_ERROR", request.name, fault.name, err)
				}
			})
		}
	}
}
