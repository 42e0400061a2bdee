package controller

import "github.com/cairnlog/cairn/transport"

// servedTable remembers the requests a node served lately (forwarded
// proposals, learner additions, node joins), by sender, frame type and
// request id, so that a copy of one is not acted on again: it is answered
// with the first copy's result, or dropped while the first is still being
// served (that one's answer, with the same id, answers the sender). A copy
// comes from the network delivering a frame twice, or from the sender,
// which sends a request again under its id every ResendInterval until
// answered: a lost frame then costs a resend interval, not the sender's
// whole timeout (a wiped node's rejoin lost 15 s to one lost NodeJoin and
// failed its start when two were lost: seeds 2664 and 2858). Proposing a
// copy would apply the command twice, and the sender takes whichever
// answer comes first: a CreateTopic it made could be answered "topic
// already exists" by its own copy (seed 19).
//
// It is the serving node's memory only, not the applied state: a request
// forwarded to a leader that lost its leadership, then to the next one,
// is not known there; the sender never sends a request whose outcome is
// unknown (ErrTimeout) to another node, only one answered "not the
// controller", which was not proposed. Request ids are drawn from a random
// start at each Open (and each join), so a restarted sender's ids do not
// meet its earlier run's.
//
// Not safe for concurrent use: Controller.mu guards it.
type servedTable struct {
	entries map[requestKey]*servedEntry
	// order is the keys in the order they arrived, the oldest first.
	order []requestKey
	// limit bounds the entries; ones still being served are never
	// dropped, and there are at most ForwardedMax of them, far fewer.
	limit int
}

// requestKey names a forwarded request: ids are the sender's own, drawn
// from one counter per kind of request (a node's proposals and learner
// additions share one, its joins another).
type requestKey struct {
	from, id uint64
	typ      transport.FrameType
}

type servedEntry struct {
	answered bool
	result   forwardResult
}

func newServedTable(limit int) *servedTable {
	return &servedTable{entries: map[requestKey]*servedEntry{}, limit: limit}
}

// begin records that a request arrived. first: no copy of it arrived
// before (within the window), and the caller serves it. Otherwise, when
// answered, r is the result to send the copy again; when not answered,
// the first copy is still being served and the copy is dropped.
func (t *servedTable) begin(k requestKey) (first bool, r forwardResult, answered bool) {
	if e, ok := t.entries[k]; ok {
		return false, e.result, e.answered
	}
	t.entries[k] = &servedEntry{}
	t.order = append(t.order, k)
	t.trim()
	return true, forwardResult{}, false
}

// finish records the result a served request was answered with.
func (t *servedTable) finish(k requestKey, r forwardResult) {
	if e, ok := t.entries[k]; ok {
		e.answered, e.result = true, r
	}
}

// trim drops the oldest answered entries beyond the limit. An entry still
// being served goes to the back instead; each is looked at once at most,
// so trim ends even if they alone exceed it.
func (t *servedTable) trim() {
	for n := len(t.order); len(t.order) > t.limit && n > 0; n-- {
		k := t.order[0]
		t.order = t.order[1:]
		if !t.entries[k].answered {
			t.order = append(t.order, k)
			continue
		}
		delete(t.entries, k)
	}
}
