package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestOutcomeOfSeparatesRefusalsFromUnknownFates(t *testing.T) {
	for _, test := range []struct {
		err  error
		want outcome
	}{
		{nil, outcomeWritten},
		{kerr.MessageTooLarge, outcomeFailed},
		{kerr.InvalidTopicException, outcomeFailed},
		{kerr.UnknownTopicOrPartition, outcomeFailed},
		{kgo.ErrMaxBuffered, outcomeFailed},
		{errors.New("refused for a reason of its own"), outcomeFailed},
		{context.Canceled, outcomeUnknown},
		{fmt.Errorf("produce: %w", context.DeadlineExceeded), outcomeUnknown},
		{kgo.ErrRecordTimeout, outcomeUnknown},
		{kgo.ErrRecordRetries, outcomeUnknown},
		{kgo.ErrClientClosed, outcomeUnknown},
		{kerr.RequestTimedOut, outcomeUnknown},
		{kerr.NotEnoughReplicasAfterAppend, outcomeUnknown},
		{io.EOF, outcomeUnknown},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), outcomeUnknown},
	} {
		if got := outcomeOf(test.err); got != test.want {
			t.Errorf("outcomeOf(%v) = %d, want %d", test.err, got, test.want)
		}
	}
}
