package groups

import "errors"

// Sentinels for the expected outcomes of group requests; the Kafka layer maps
// each to its error code.
var (
	ErrInvalidGroupID         = errors.New("invalid group id")
	ErrInvalidSessionTimeout  = errors.New("session timeout outside the broker's bounds")
	ErrInconsistentProtocol   = errors.New("protocol type or protocols do not match the group's")
	ErrMemberIDRequired       = errors.New("member id required: rejoin with the member id given")
	ErrUnknownMemberID        = errors.New("unknown member id")
	ErrIllegalGeneration      = errors.New("illegal generation")
	ErrRebalanceInProgress    = errors.New("rebalance in progress")
	ErrFencedInstanceID       = errors.New("static member fenced by a newer instance with the same group.instance.id")
	ErrGroupMaxSize           = errors.New("group or coordinator is at its size limit")
	ErrMetadataTooLarge       = errors.New("protocol metadata too large")
	ErrOffsetMetadataTooLarge = errors.New("offset metadata too large")
	ErrGroupNotFound          = errors.New("group not found")
	ErrNonEmptyGroup          = errors.New("group has live members")
	ErrSubscribedToTopic      = errors.New("group is subscribed to the topic")
	ErrFencedMemberEpoch      = errors.New("member epoch is not the member's current one")
	ErrStaleMemberEpoch       = errors.New("member epoch is older than the member's current one")
	ErrUnsupportedAssignor    = errors.New("unknown server assignor: use uniform or range")
	ErrInvalidRequest         = errors.New("invalid request")
	ErrNotConsumerGroup       = errors.New("group is a classic group with live members, not a consumer group")
	ErrInvalidRegex           = errors.New("invalid subscription regular expression")
	ErrClosed                 = errors.New("coordinator closed")
	// ErrNotCoordinator: this node does not lead the group's
	// __consumer_offsets partition (or stopped leading it while the request
	// ran); the client looks the coordinator up again.
	ErrNotCoordinator = errors.New("not the group's coordinator")
	// ErrCoordinatorLoadInProgress: this node leads the group's offsets
	// partition and is still replaying it; the client retries.
	ErrCoordinatorLoadInProgress = errors.New("the group's offsets are being loaded")
	// ErrCoordinatorNotAvailable: the group's coordinator cannot be named
	// (the offsets topic cannot be created, or its partition has no leader).
	ErrCoordinatorNotAvailable = errors.New("no coordinator available")
)
