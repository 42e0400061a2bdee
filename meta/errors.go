package meta

import (
	"errors"
	"fmt"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/cluster/topicrules"
	"github.com/cairnlog/cairn/partition"
)

// Sentinels for the refusals of Apply, one per metav1.ErrorCode; ResultError
// wraps them, so callers test with errors.Is. Topic names, configs and the
// stream policy reuse the sentinels of topicrules and partition, which the
// front ends already map to Kafka error codes.
var (
	ErrInvalidCommand         = errors.New("invalid metadata command")
	ErrInvalidTopic           = topicrules.ErrInvalidTopic
	ErrTopicExists            = errors.New("topic already exists")
	ErrUnknownTopic           = errors.New("unknown topic or partition")
	ErrInvalidConfig          = topicrules.ErrInvalidConfig
	ErrInvalidPartitions      = errors.New("invalid partition count")
	ErrInvalidReplicas        = errors.New("invalid replica assignment")
	ErrUnknownBroker          = errors.New("unknown broker")
	ErrStaleIncarnation       = errors.New("not the broker's current incarnation")
	ErrInvalidBrokerState     = errors.New("invalid broker state change")
	ErrBrokerInUse            = errors.New("broker still holds replicas")
	ErrPolicyViolation        = partition.ErrPolicyViolation
	ErrReassignmentInProgress = errors.New("reassignment in progress")
	ErrNoReassignment         = errors.New("no such reassignment")
	ErrExhausted              = errors.New("identifiers exhausted")
	ErrAlreadyApplied         = errors.New("entry already applied")
	ErrInvalidCredential      = errors.New("invalid user or SCRAM credential")
	ErrUnknownCredential      = errors.New("no such user or SCRAM credential")
	errUnknownCode            = errors.New("unknown metadata error code")
	codeErrors                = map[metav1.ErrorCode]error{
		metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND:          ErrInvalidCommand,
		metav1.ErrorCode_ERROR_CODE_INVALID_TOPIC:            ErrInvalidTopic,
		metav1.ErrorCode_ERROR_CODE_TOPIC_EXISTS:             ErrTopicExists,
		metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC:            ErrUnknownTopic,
		metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG:           ErrInvalidConfig,
		metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS:       ErrInvalidPartitions,
		metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS:         ErrInvalidReplicas,
		metav1.ErrorCode_ERROR_CODE_UNKNOWN_BROKER:           ErrUnknownBroker,
		metav1.ErrorCode_ERROR_CODE_STALE_INCARNATION:        ErrStaleIncarnation,
		metav1.ErrorCode_ERROR_CODE_INVALID_BROKER_STATE:     ErrInvalidBrokerState,
		metav1.ErrorCode_ERROR_CODE_BROKER_IN_USE:            ErrBrokerInUse,
		metav1.ErrorCode_ERROR_CODE_POLICY_VIOLATION:         ErrPolicyViolation,
		metav1.ErrorCode_ERROR_CODE_REASSIGNMENT_IN_PROGRESS: ErrReassignmentInProgress,
		metav1.ErrorCode_ERROR_CODE_NO_REASSIGNMENT:          ErrNoReassignment,
		metav1.ErrorCode_ERROR_CODE_EXHAUSTED:                ErrExhausted,
		metav1.ErrorCode_ERROR_CODE_ALREADY_APPLIED:          ErrAlreadyApplied,
		metav1.ErrorCode_ERROR_CODE_INVALID_CREDENTIAL:       ErrInvalidCredential,
		metav1.ErrorCode_ERROR_CODE_UNKNOWN_CREDENTIAL:       ErrUnknownCredential,
	}
)

// ResultError is nil for an accepted command, else an error wrapping the
// sentinel of the refusal's code, with its message.
func ResultError(r *metav1.Result) error {
	code := r.GetCode()
	if code == metav1.ErrorCode_ERROR_CODE_NONE {
		return nil
	}
	sentinel, ok := codeErrors[code]
	if !ok {
		// A result written by a newer version: refused all the same.
		return fmt.Errorf("%w %d: %s", errUnknownCode, code, r.GetMessage())
	}
	return fmt.Errorf("%w: %s", sentinel, r.GetMessage())
}

// refusal is how the command handlers refuse: a code every node agrees on
// and a message for the operator. The state is unchanged.
type refusal struct {
	code    metav1.ErrorCode
	message string
}

func (r *refusal) Error() string { return r.code.String() + ": " + r.message }

func refuse(code metav1.ErrorCode, format string, args ...any) *refusal {
	return &refusal{code: code, message: fmt.Sprintf(format, args...)}
}

// refuseWrapped refuses with err's message, which the rules of topicrules
// produce deterministically (keys are checked in sorted order), less the
// sentinel's own text that ResultError puts back.
func refuseWrapped(code metav1.ErrorCode, err error) *refusal {
	message := err.Error()
	if sentinel, ok := codeErrors[code]; ok {
		message = strings.TrimPrefix(message, sentinel.Error()+": ")
	}
	return &refusal{code: code, message: message}
}
