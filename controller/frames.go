package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Payloads of the frames a follower forwards proposals in (transport
// frame types 5 MetaPropose and 6 MetaProposeResult), big-endian:
//
//	MetaPropose
//	 0      8     request id, chosen by the sender, echoed in the result
//	 8      …     metav1.Command, marshalled
//
//	MetaProposeResult
//	 0      8     request id
//	 8      1     status: 0 applied, 1 not the controller, 2 failed, 3 refused, 4 refused (live)
//	 9      8     index the command was applied at (status 0), else 0
//	17      …     status 0: metav1.Result, marshalled; 2, 3, 4: the error text
//
// Join (type 7) asks the leader to add a registered incarnation as a
// learner and JoinResult (type 8) answers it, in the same layouts: Join's
// body is the replica id (8 bytes), JoinResult's index the applied index
// that shows the learner, with no body when applied.
//
// "Not the controller" means the command was not proposed, so the sender
// may send it again (to the leader it learns of next); "failed" means its
// outcome is unknown to the leader (a timeout, a lost leadership after
// proposing), so it must not be sent again blindly; "refused" (3, body the
// reason) means it was not applied and never will be (ErrRefused); 4, a
// refusal to register a new incarnation while the node's current one is
// alive (ErrLiveIncarnation), may be asked again once it is silent.

// forwardStatus is MetaProposeResult's status byte.
type forwardStatus uint8

const (
	statusApplied       forwardStatus = 0
	statusNotController forwardStatus = 1
	statusFailed        forwardStatus = 2
	statusRefused       forwardStatus = 3
	statusRefusedLive   forwardStatus = 4
)

const (
	proposeHeaderBytes = 8
	resultHeaderBytes  = 17
)

var errBadFrame = errors.New("controller: malformed frame")

func encodePropose(requestID uint64, command []byte) []byte {
	b := make([]byte, 0, proposeHeaderBytes+len(command))
	b = binary.BigEndian.AppendUint64(b, requestID)
	return append(b, command...)
}

// decodePropose returns the request id and a copy of the command (the
// transport reuses the payload's buffer).
func decodePropose(p []byte) (uint64, []byte, error) {
	if len(p) < proposeHeaderBytes {
		return 0, nil, fmt.Errorf("%w: propose of %d bytes", errBadFrame, len(p))
	}
	return binary.BigEndian.Uint64(p), append([]byte(nil), p[proposeHeaderBytes:]...), nil
}

// forwardResult is a decoded MetaProposeResult.
type forwardResult struct {
	requestID uint64
	status    forwardStatus
	index     uint64
	body      []byte
}

func encodeResult(r forwardResult) []byte {
	b := make([]byte, 0, resultHeaderBytes+len(r.body))
	b = binary.BigEndian.AppendUint64(b, r.requestID)
	b = append(b, byte(r.status))
	b = binary.BigEndian.AppendUint64(b, r.index)
	return append(b, r.body...)
}

func decodeResult(p []byte) (forwardResult, error) {
	if len(p) < resultHeaderBytes {
		return forwardResult{}, fmt.Errorf("%w: result of %d bytes", errBadFrame, len(p))
	}
	r := forwardResult{
		requestID: binary.BigEndian.Uint64(p),
		status:    forwardStatus(p[8]),
		index:     binary.BigEndian.Uint64(p[9:]),
		body:      append([]byte(nil), p[resultHeaderBytes:]...),
	}
	if r.status > statusRefusedLive {
		return forwardResult{}, fmt.Errorf("%w: status %d", errBadFrame, r.status)
	}
	return r, nil
}
