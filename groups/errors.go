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
)
