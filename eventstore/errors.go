package eventstore

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/streams"
)

// toConnectError gives an internal error its API code. A wrong expected
// revision carries a WrongExpectedRevision detail with the actual revision.
func toConnectError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	var wrong *streams.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		e := connect.NewError(connect.CodeFailedPrecondition, wrong)
		detail := &eventstorev1.WrongExpectedRevision{Stream: wrong.Stream, Expected: expectedProto(wrong.Expected)}
		if wrong.Actual >= 0 {
			v := uint64(wrong.Actual)
			detail.ActualRevision = &v
		}
		if d, derr := connect.NewErrorDetail(detail); derr == nil {
			e.AddDetail(d)
		}
		return e
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, streams.ErrStreamDeleted):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, streams.ErrInvalid), errors.Is(err, partition.ErrMessageTooLarge),
		errors.Is(err, partition.ErrInvalidRecord), errors.Is(err, cluster.ErrInvalidTopic),
		errors.Is(err, cluster.ErrInvalidConfig):
		code = connect.CodeInvalidArgument
	case errors.Is(err, cluster.ErrUnknownTopic):
		code = connect.CodeNotFound
	case errors.Is(err, partition.ErrNoStreamIndex), errors.Is(err, partition.ErrPolicyViolation):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, partition.ErrDiskFull):
		code = connect.CodeResourceExhausted
	case errors.Is(err, partition.ErrStorageFailed), errors.Is(err, partition.ErrWrite), errors.Is(err, partition.ErrRead),
		errors.Is(err, partition.ErrClosed), errors.Is(err, cluster.ErrPartitionOffline),
		errors.Is(err, partition.ErrStreamIndexBuilding), errors.Is(err, partition.ErrNotLeader),
		errors.Is(err, replica.ErrReadDropped), errors.Is(err, replica.ErrClosed), errors.Is(err, replica.ErrUnknownGroup),
		errors.Is(err, replica.ErrBusy):
		code = connect.CodeUnavailable
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, err)
}

// Reasons of ErrorInfo details.
const (
	reasonStreamNotFound = "STREAM_NOT_FOUND"
	reasonStreamDeleted  = "STREAM_DELETED"
	reasonTopicNotFound  = "TOPIC_NOT_FOUND"
	reasonNotEventStore  = "NOT_AN_EVENT_STORE"
)

// withInfo returns an error with code and an ErrorInfo detail naming reason.
func withInfo(code connect.Code, reason, topic, stream string, err error) *connect.Error {
	e := connect.NewError(code, err)
	if d, derr := connect.NewErrorDetail(&eventstorev1.ErrorInfo{Reason: reason, Topic: topic, Stream: stream}); derr == nil {
		e.AddDetail(d)
	}
	return e
}
