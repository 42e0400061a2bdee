package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/txn"
)

// errorTable is the one place internal errors become Kafka error codes.
// Order matters only where errors wrap each other; the first match wins.
var errorTable = []struct {
	err  error
	code *kerr.Error
}{
	{partition.ErrNotLeader, kerr.NotLeaderForPartition}, // also cluster.ErrNotLeader: NOT_LEADER_OR_FOLLOWER
	{partition.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{partition.ErrMessageTooLarge, kerr.MessageTooLarge},
	{partition.ErrCorruptMessage, kerr.CorruptMessage},
	{partition.ErrInvalidRecord, kerr.InvalidRecord},
	{partition.ErrUnsupported, kerr.InvalidRecord},
	{partition.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{partition.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{partition.ErrInvalidTxnState, kerr.InvalidTxnState},
	{partition.ErrTransactionCoordinatorFenced, kerr.TransactionCoordinatorFenced},
	{partition.ErrPolicyViolation, kerr.PolicyViolation},
	{partition.ErrNoStreamIndex, kerr.InvalidRequest},
	{partition.ErrStreamIndexBuilding, kerr.LeaderNotAvailable}, // retriable: clients try again
	{partition.ErrStreamBusy, kerr.ConcurrentTransactions},      // retriable: an AppendMulti holds the stream until its marker
	{partition.ErrClosed, kerr.UnknownTopicOrPartition},
	{partition.ErrStorageFailed, kerr.KafkaStorageError},
	{partition.ErrDiskFull, kerr.KafkaStorageError},
	{partition.ErrWrite, kerr.KafkaStorageError},
	{partition.ErrRead, kerr.KafkaStorageError},
	{cluster.ErrPartitionOffline, kerr.KafkaStorageError},
	// A produce racing its group's removal (a move, a renewal), the
	// node's close, or a full queue of calls to the group: nothing was
	// proposed, and the client retries where the metadata sends it.
	{replica.ErrUnknownGroup, kerr.NotLeaderForPartition},
	{replica.ErrClosed, kerr.NotLeaderForPartition},
	{replica.ErrBusy, kerr.NotLeaderForPartition},
	{cluster.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{cluster.ErrInvalidCredential, kerr.UnacceptableCredential},
	{cluster.ErrUnknownCredential, kerr.ResourceNotFound},
	{cluster.ErrTopicExists, kerr.TopicAlreadyExists},
	{cluster.ErrInvalidTopic, kerr.InvalidTopicException},
	{cluster.ErrInvalidPartitions, kerr.InvalidPartitions},
	{cluster.ErrInvalidConfig, kerr.InvalidConfig},
	{cluster.ErrInvalidReplicationFactor, kerr.InvalidReplicationFactor},
	{cluster.ErrReassignmentInProgress, kerr.ReassignmentInProgress},
	{cluster.ErrNoReassignment, kerr.NoReassignmentInProgress},
	{cluster.ErrInvalidReplicas, kerr.InvalidReplicaAssignment},
	{cluster.ErrUnknownNode, kerr.InvalidReplicaAssignment},
	{cluster.ErrNotClustered, kerr.InvalidRequest},
	{cluster.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
	{cluster.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
	{groups.ErrInvalidGroupID, kerr.InvalidGroupID},
	{groups.ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout},
	{groups.ErrInconsistentProtocol, kerr.InconsistentGroupProtocol},
	{groups.ErrMemberIDRequired, kerr.MemberIDRequired},
	{groups.ErrUnknownMemberID, kerr.UnknownMemberID},
	{groups.ErrIllegalGeneration, kerr.IllegalGeneration},
	{groups.ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{groups.ErrFencedInstanceID, kerr.FencedInstanceID},
	{groups.ErrGroupMaxSize, kerr.GroupMaxSizeReached},
	{groups.ErrMetadataTooLarge, kerr.InvalidRequest},
	{groups.ErrOffsetMetadataTooLarge, kerr.OffsetMetadataTooLarge},
	{groups.ErrGroupNotFound, kerr.GroupIDNotFound},
	{groups.ErrNonEmptyGroup, kerr.NonEmptyGroup},
	{groups.ErrSubscribedToTopic, kerr.GroupSubscribedToTopic},
	{groups.ErrFencedMemberEpoch, kerr.FencedMemberEpoch},
	{groups.ErrStaleMemberEpoch, kerr.StaleMemberEpoch},
	{groups.ErrUnsupportedAssignor, kerr.UnsupportedAssignor},
	{groups.ErrInvalidRequest, kerr.InvalidRequest},
	{groups.ErrNotConsumerGroup, kerr.GroupIDNotFound},
	{groups.ErrInvalidRegex, kerr.InvalidRegularExpression},
	{groups.ErrClosed, kerr.CoordinatorNotAvailable},
	{groups.ErrNotCoordinator, kerr.NotCoordinator},
	{groups.ErrCoordinatorLoadInProgress, kerr.CoordinatorLoadInProgress},
	{groups.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{txn.ErrNotCoordinator, kerr.NotCoordinator},
	{txn.ErrCoordinatorLoadInProgress, kerr.CoordinatorLoadInProgress},
	{txn.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{txn.ErrConcurrentTransactions, kerr.ConcurrentTransactions},
	{txn.ErrProducerFenced, kerr.ProducerFenced},
	{txn.ErrInvalidProducerIDMapping, kerr.InvalidProducerIDMapping},
	{txn.ErrInvalidTxnState, kerr.InvalidTxnState},
	{txn.ErrInvalidTransactionTimeout, kerr.InvalidTransactionTimeout},
	{txn.ErrTransactionalIDNotFound, kerr.TransactionalIDNotFound},
	{txn.ErrInvalidRequest, kerr.InvalidRequest},
	{txn.ErrTooManyTransactions, kerr.CoordinatorNotAvailable},
	{txn.ErrClosed, kerr.CoordinatorNotAvailable},
	{errFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{errUnknownLeaderEpoch, kerr.UnknownLeaderEpoch},
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{context.Canceled, kerr.RequestTimedOut},
}

var (
	errFencedLeaderEpoch  = errors.New("fenced leader epoch: the client's epoch is older than the partition's")
	errUnknownLeaderEpoch = errors.New("unknown leader epoch: the client's epoch is newer than the partition's")
)

// errorCode maps err to a Kafka error code; 0 for nil.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is the text for responses that carry one; nil for success.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// checkLeaderEpoch applies KIP-320: a client naming an epoch (>= 0) must name
// the current one, so it learns of leader changes and truncation.
func checkLeaderEpoch(current, requested int32) error {
	switch {
	case requested < 0 || requested == current:
		return nil
	case requested < current:
		return errFencedLeaderEpoch
	default:
		return errUnknownLeaderEpoch
	}
}
