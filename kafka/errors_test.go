package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cairnlog/cairn/replica"
)

// TestSchedulerErrorsAreRetriable: a produce refused by the replica
// scheduler before anything was proposed (its group removed by a move or
// a renewal, the node closing, too many calls queued) gets a code clients
// retry after a metadata refresh, never UNKNOWN_SERVER_ERROR, which
// franz-go fails the batch on.
func TestSchedulerErrorsAreRetriable(t *testing.T) {
	for _, err := range []error{replica.ErrUnknownGroup, replica.ErrClosed, replica.ErrBusy} {
		wrapped := fmt.Errorf("propose to orders-0: %w", err)
		if code := errorCode(wrapped); code != kerr.NotLeaderForPartition.Code {
			t.Errorf("%v: code %d, want NOT_LEADER_OR_FOLLOWER (%d)", err, code, kerr.NotLeaderForPartition.Code)
		}
	}
}
