package groups

import (
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/replica"
)

// TestSchedulerRefusalIsNotLeader: an offsets write the replica scheduler
// refused because the partition's replica left it (a move, a renewal, the
// node closing) fences the coordinator like a lost leadership, so the
// request is answered NOT_COORDINATOR and the client finds the new one.
func TestSchedulerRefusalIsNotLeader(t *testing.T) {
	for _, err := range []error{replica.ErrUnknownGroup, replica.ErrClosed} {
		if !isNotLeader(fmt.Errorf("append to %s-0: %w", OffsetsTopic, err)) {
			t.Errorf("%v is not taken for a lost leadership", err)
		}
	}
}
