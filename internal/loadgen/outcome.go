package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrOutcomeUnknown reports a run that ended with records whose fate it
// cannot tell: sent but never answered, or answered with an error that does
// not say whether the broker wrote them. Such records may well be in the log.
var ErrOutcomeUnknown = errors.New("records with an unknown outcome")

// outcome is what an answer to one produced record says about it.
type outcome int

const (
	outcomeWritten outcome = iota
	// outcomeFailed: the record was certainly not written (the broker or
	// the client refused it).
	outcomeFailed
	// outcomeUnknown: the record may or may not have been written.
	outcomeUnknown
)

// outcomeOf classifies a produce promise's error. Timeouts, cancellations,
// a closed client and lost connections leave the record's fate open: the
// request may have reached the broker and been written before the answer
// was lost. Every other error is a refusal.
func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return outcomeWritten
	case errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kgo.ErrRecordRetries),
		errors.Is(err, kgo.ErrClientClosed),
		// The broker timed out waiting for its own durability; the
		// write may still complete.
		errors.Is(err, kerr.RequestTimedOut),
		errors.Is(err, kerr.NotEnoughReplicasAfterAppend),
		isConnectionLost(err):
		return outcomeUnknown
	}
	return outcomeFailed
}

func isConnectionLost(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
