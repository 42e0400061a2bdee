// Package linear holds the linearizability models of consumer-group offsets
// and event-store streams, and the handling of operations whose outcome is
// unknown, that the fault tests check client histories against with
// porcupine: the real-process nemesis (test/integration) and the
// whole-cluster simulation (cluster's TestSimulatedClusterLinearizable).
package linear

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// CheckMax bounds the checker's real time per history.
const CheckMax = 20 * time.Second

// History is a history of operations timed by now, which must never go
// back (a monotonic clock, or a logical one). An operation whose outcome
// is unknown (an error that may hide an effect) gets as its return the end
// of the history: it may have taken effect at any time after its call, or
// never.
type History struct {
	now     func() int64
	mu      sync.Mutex
	ops     []porcupine.Operation
	unknown []int // indexes into ops
}

// NewHistory returns an empty history timed by now.
func NewHistory(now func() int64) *History { return &History{now: now} }

// Now is the time a call is recorded at.
func (h *History) Now() int64 { return h.now() }

// Add records an operation called at call and returning now.
func (h *History) Add(client int, call int64, input, output any, known bool) {
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !known {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input, Call: call, Output: output, Return: ret})
}

// Done returns the history with the unknown operations ending after every
// other one.
func (h *History) Done() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := slices.Clone(h.ops)
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	for _, i := range h.unknown {
		ops[i].Return = end + 1
	}
	return ops
}

// OffsetInput is a commit of offset to, or a fetch of, a group's offset
// of a partition (key names both).
type OffsetInput struct {
	Key    string
	Commit bool
	Offset int64
}

// OffsetOutput is what a fetch read (-1 for no commit), or whether a
// commit's outcome is unknown (for the log: the model needs no outcome).
type OffsetOutput struct {
	Offset  int64
	Unknown bool
}

// OffsetsModel is a register per group and partition: a commit sets it
// whatever its outcome (a commit that failed for sure is not recorded),
// a fetch reads it.
var OffsetsModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			key := op.Input.(OffsetInput).Key
			if _, ok := byKey[key]; !ok {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], op)
		}
		var out [][]porcupine.Operation
		for _, key := range keys {
			out = append(out, byKey[key])
		}
		return out
	},
	Init: func() any { return int64(-1) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(OffsetInput)
		if in.Commit {
			return true, in.Offset
		}
		return output.(OffsetOutput).Offset == state.(int64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(OffsetInput)
		if in.Commit {
			return fmt.Sprintf("commit(%d)", in.Offset)
		}
		return fmt.Sprintf("fetch() → %d", output.(OffsetOutput).Offset)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state) },
}

// StreamKind is what a stream operation does.
type StreamKind uint8

const (
	StreamAppend   StreamKind = iota
	StreamReadLast            // backwards, one event
	StreamReadAll             // forwards, the whole stream
)

// ExpectAny is an append's expected revision for Any; -1 is
// NoStream.
const ExpectAny = -2

// StreamInput is an append of event id at an expected revision, or a
// read. Event ids are numbered in the test, so the model's state is a
// short string.
type StreamInput struct {
	Kind     StreamKind
	Expected int64
	ID       uint32
}

// StreamOutput is an operation's outcome. An append acknowledged at
// revision, or refused (ok false) with the stream's actual revision; an
// append of unknown outcome has unknown set. A read saw events (their
// numbers, four bytes each, as in the model's state: the last one only
// for StreamReadLast) and the revision of the last of them.
type StreamOutput struct {
	Unknown  bool
	OK       bool
	Revision int64
	Events   string
}

// StreamModel is a stream's list of event ids, four bytes an event: an
// append at expected revision r happens only when the stream's last
// revision is r (Any: always) and lands at the next; a refusal names the
// last revision; a read sees the end of the list (or all of it).
var StreamModel = porcupine.Model{
	Init: func() any { return "" },
	Hash: func(state any) uint64 { return maphash.String(streamSeed, state.(string)) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(StreamInput), output.(StreamOutput)
		last := int64(len(s)/4) - 1
		switch in.Kind {
		case StreamAppend:
			if in.Expected != ExpectAny && in.Expected != last {
				return out.Unknown || (!out.OK && out.Revision == last), s
			}
			if out.Unknown || (out.OK && out.Revision == last+1) {
				return true, s + string(binary.BigEndian.AppendUint32(nil, in.ID))
			}
			return false, s
		case StreamReadLast:
			return out.Revision == last && out.Events == s[max(len(s)-4, 0):], s
		default:
			return out.Revision == last && out.Events == s, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(StreamInput), output.(StreamOutput)
		switch {
		case in.Kind == StreamAppend && out.Unknown:
			return fmt.Sprintf("append(e%d at %d) → ?", in.ID, in.Expected)
		case in.Kind == StreamAppend && out.OK:
			return fmt.Sprintf("append(e%d at %d) → %d", in.ID, in.Expected, out.Revision)
		case in.Kind == StreamAppend:
			return fmt.Sprintf("append(e%d at %d) → refused, last %d", in.ID, in.Expected, out.Revision)
		case in.Kind == StreamReadLast:
			return fmt.Sprintf("readLast() → %v, last %d", DecodeIDs(out.Events), out.Revision)
		}
		return fmt.Sprintf("readAll() → %d events, last %d", len(out.Events)/4, out.Revision)
	},
	DescribeState: func(state any) string {
		s := state.(string)
		if len(s) == 0 {
			return "[]"
		}
		return fmt.Sprintf("%d events, last e%d", len(s)/4, binary.BigEndian.Uint32([]byte(s[len(s)-4:])))
	},
}

var streamSeed = maphash.MakeSeed()

func EncodeIDs(ids ...uint32) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return string(b)
}

func DecodeIDs(s string) []uint32 {
	var ids []uint32
	for i := 0; i+4 <= len(s); i += 4 {
		ids = append(ids, binary.BigEndian.Uint32([]byte(s[i:i+4])))
	}
	return ids
}

// DropUnseenCommits leaves out the commits of unknown outcome whose
// offset no fetch of their key returned (commits are unique). Such a
// commit may be placed at the history's end, where it changes no read, so
// the history is linearizable with it exactly when it is without it; and
// each one left in doubles what the checker may have to try.
func DropUnseenCommits(ops []porcupine.Operation) []porcupine.Operation {
	type seen struct {
		key    string
		offset int64
	}
	fetched := map[seen]bool{}
	for _, op := range ops {
		if in := op.Input.(OffsetInput); !in.Commit {
			fetched[seen{in.Key, op.Output.(OffsetOutput).Offset}] = true
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in := op.Input.(OffsetInput)
		if in.Commit && op.Output.(OffsetOutput).Unknown && !fetched[seen{in.Key, in.Offset}] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// ResolveAppends gives each append of unknown outcome the outcome the
// stream's final contents show: an append whose event is at revision r
// was acknowledged at r (when is still unknown: it keeps its open end),
// and one whose event is absent never took effect — the stream is never
// truncated here — so it leaves the history, as an operation without
// effect may. Each unknown append doubles what the checker may have to
// try; resolved, they seldom leave it more than one order.
func ResolveAppends(ops []porcupine.Operation, final []uint32) []porcupine.Operation {
	at := make(map[uint32]int64, len(final))
	for r, n := range final {
		at[n] = int64(r)
	}
	out := ops[:0]
	for _, op := range ops {
		in, ok := op.Input.(StreamInput)
		if !ok || in.Kind != StreamAppend || !op.Output.(StreamOutput).Unknown {
			out = append(out, op)
			continue
		}
		if r, ok := at[in.ID]; ok {
			op.Output = StreamOutput{OK: true, Revision: r}
			out = append(out, op)
		}
	}
	return out
}

// runOffsetsClient commits (a third of the operations) and fetches the
// group's offset of topic's partition 0: commits through the coordinator,

// Kinds counts a history's operations by kind, for the log.
func Kinds(ops []porcupine.Operation) string {
	kinds := map[string]int{}
	for _, op := range ops {
		switch in := op.Input.(type) {
		case OffsetInput:
			switch {
			case !in.Commit:
				kinds["fetches"]++
			case op.Output.(OffsetOutput).Unknown:
				kinds["commits unknown"]++
			default:
				kinds["commits acknowledged"]++
			}
		case StreamInput:
			out := op.Output.(StreamOutput)
			switch {
			case in.Kind == StreamReadLast:
				kinds["last-event reads"]++
			case in.Kind == StreamReadAll:
				kinds["whole reads"]++
			case out.Unknown:
				kinds["appends unknown"]++
			case out.OK:
				kinds["appends acknowledged"]++
			default:
				kinds["appends refused"]++
			}
		}
	}
	return fmt.Sprint(kinds)
}

// Check checks ops against model, and reports whether they passed (or
// the check ran out of time).
func Check(t testing.TB, seed uint64, name string, model porcupine.Model, ops []porcupine.Operation) bool {
	t.Helper()
	began := time.Now()
	result, info := porcupine.CheckOperationsVerbose(model, ops, CheckMax)
	t.Logf("linearizability of the %s: %d operations %s: %s in %s", name, len(ops), Kinds(ops), result, time.Since(began).Round(time.Millisecond))
	if result != porcupine.Illegal {
		return true
	}
	dir, err := os.MkdirTemp("", "cairn-linear-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("visualize the %s history: %v", name, err)
	}
	t.Errorf("seed %d: the %s history is not linearizable; visualization: %s", seed, name, path)
	return false
}
