package cluster_test

// The linearizability models of the simulation's workload: the ideas of
// test/integration's nemesis models (Tier 2), on the histories the
// simulated clients record.

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// linOffsetIn is a commit of offset to, or a fetch of, a group's offset
// of a partition (key names both).
type linOffsetIn struct {
	key    string
	commit bool
	offset int64
}

// linOffsetOut is what a fetch read (-1 for no commit), or whether a
// commit's outcome is unknown (for the log: the model needs no outcome).
type linOffsetOut struct {
	offset  int64
	unknown bool
}

// linOffsetsModel is a register per group and partition: a commit sets it
// whatever its outcome (a commit that failed for sure is not recorded),
// a fetch reads it.
var linOffsetsModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			key := op.Input.(linOffsetIn).key
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
		in := input.(linOffsetIn)
		if in.commit {
			return true, in.offset
		}
		return output.(linOffsetOut).offset == state.(int64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linOffsetIn)
		if in.commit {
			return fmt.Sprintf("commit(%d)", in.offset)
		}
		return fmt.Sprintf("fetch() → %d", output.(linOffsetOut).offset)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state) },
}

// linStreamKind is what a stream operation does.
type linStreamKind uint8

const (
	linAppend   linStreamKind = iota
	linReadLast               // backwards, one event
	linReadAll                // forwards, the whole stream
)

// linExpectAny is an append's expected revision for Any; -1 is
// NoStream.
const linExpectAny = -2

// linStreamIn is an append of event id at an expected revision, or a
// read. Event ids are numbered in the test, so the model's state is a
// short string.
type linStreamIn struct {
	kind     linStreamKind
	expected int64
	id       uint32
}

// linStreamOut is an operation's outcome. An append acknowledged at
// revision, or refused (ok false) with the stream's actual revision; an
// append of unknown outcome has unknown set. A read saw events (their
// numbers, four bytes each, as in the model's state: the last one only
// for linReadLast) and the revision of the last of them.
type linStreamOut struct {
	unknown  bool
	ok       bool
	revision int64
	events   string
}

// linStreamModel is a stream's list of event ids, four bytes an event: an
// append at expected revision r happens only when the stream's last
// revision is r (Any: always) and lands at the next; a refusal names the
// last revision; a read sees the end of the list (or all of it).
var linStreamModel = porcupine.Model{
	Init: func() any { return "" },
	Hash: func(state any) uint64 { return maphash.String(linStreamSeed, state.(string)) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linStreamIn), output.(linStreamOut)
		last := int64(len(s)/4) - 1
		switch in.kind {
		case linAppend:
			if in.expected != linExpectAny && in.expected != last {
				return out.unknown || (!out.ok && out.revision == last), s
			}
			if out.unknown || (out.ok && out.revision == last+1) {
				return true, s + string(binary.BigEndian.AppendUint32(nil, in.id))
			}
			return false, s
		case linReadLast:
			return out.revision == last && out.events == s[max(len(s)-4, 0):], s
		default:
			return out.revision == last && out.events == s, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linStreamIn), output.(linStreamOut)
		switch {
		case in.kind == linAppend && out.unknown:
			return fmt.Sprintf("append(e%d at %d) → ?", in.id, in.expected)
		case in.kind == linAppend && out.ok:
			return fmt.Sprintf("append(e%d at %d) → %d", in.id, in.expected, out.revision)
		case in.kind == linAppend:
			return fmt.Sprintf("append(e%d at %d) → refused, last %d", in.id, in.expected, out.revision)
		case in.kind == linReadLast:
			return fmt.Sprintf("readLast() → %v, last %d", linDecode(out.events), out.revision)
		}
		return fmt.Sprintf("readAll() → %d events, last %d", len(out.events)/4, out.revision)
	},
	DescribeState: func(state any) string {
		s := state.(string)
		if len(s) == 0 {
			return "[]"
		}
		return fmt.Sprintf("%d events, last e%d", len(s)/4, binary.BigEndian.Uint32([]byte(s[len(s)-4:])))
	},
}

var linStreamSeed = maphash.MakeSeed()

func linEncode(ids ...uint32) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return string(b)
}

func linDecode(s string) []uint32 {
	var ids []uint32
	for i := 0; i+4 <= len(s); i += 4 {
		ids = append(ids, binary.BigEndian.Uint32([]byte(s[i:i+4])))
	}
	return ids
}

// linDropUnseenCommits leaves out the commits of unknown outcome whose
// offset no fetch of their key returned (commits are unique). Such a
// commit may be placed at the history's end, where it changes no read, so
// the history is linearizable with it exactly when it is without it; and
// each one left in doubles what the checker may have to try.
func linDropUnseenCommits(ops []porcupine.Operation) []porcupine.Operation {
	type seen struct {
		key    string
		offset int64
	}
	fetched := map[seen]bool{}
	for _, op := range ops {
		if in := op.Input.(linOffsetIn); !in.commit {
			fetched[seen{in.key, op.Output.(linOffsetOut).offset}] = true
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in := op.Input.(linOffsetIn)
		if in.commit && op.Output.(linOffsetOut).unknown && !fetched[seen{in.key, in.offset}] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// linResolveAppends gives each append of unknown outcome the outcome the
// stream's final contents show: an append whose event is at revision r
// was acknowledged at r (when is still unknown: it keeps its open end),
// and one whose event is absent never took effect — the stream is never
// truncated here — so it leaves the history, as an operation without
// effect may. Each unknown append doubles what the checker may have to
// try; resolved, they seldom leave it more than one order.
func linResolveAppends(ops []porcupine.Operation, final []uint32) []porcupine.Operation {
	at := make(map[uint32]int64, len(final))
	for r, n := range final {
		at[n] = int64(r)
	}
	out := ops[:0]
	for _, op := range ops {
		in, ok := op.Input.(linStreamIn)
		if !ok || in.kind != linAppend || !op.Output.(linStreamOut).unknown {
			out = append(out, op)
			continue
		}
		if r, ok := at[in.id]; ok {
			op.Output = linStreamOut{ok: true, revision: r}
			out = append(out, op)
		}
	}
	return out
}

// runOffsetsClient commits (a third of the operations) and fetches the
// group's offset of topic's partition 0: commits through the coordinator,

// linKinds counts a history's operations by kind, for the log.
func linKinds(ops []porcupine.Operation) string {
	kinds := map[string]int{}
	for _, op := range ops {
		switch in := op.Input.(type) {
		case linOffsetIn:
			switch {
			case !in.commit:
				kinds["fetches"]++
			case op.Output.(linOffsetOut).unknown:
				kinds["commits unknown"]++
			default:
				kinds["commits acknowledged"]++
			}
		case linStreamIn:
			out := op.Output.(linStreamOut)
			switch {
			case in.kind == linReadLast:
				kinds["last-event reads"]++
			case in.kind == linReadAll:
				kinds["whole reads"]++
			case out.unknown:
				kinds["appends unknown"]++
			case out.ok:
				kinds["appends acknowledged"]++
			default:
				kinds["appends refused"]++
			}
		}
	}
	return fmt.Sprint(kinds)
}

// linCheck checks ops against model, and reports whether they passed (or
// the check ran out of time).
func linCheck(t *testing.T, seed uint64, name string, model porcupine.Model, ops []porcupine.Operation) bool {
	t.Helper()
	began := time.Now()
	result, info := porcupine.CheckOperationsVerbose(model, ops, linCheckMax)
	t.Logf("linearizability of the %s: %d operations %s: %s in %s", name, len(ops), linKinds(ops), result, time.Since(began).Round(time.Millisecond))
	if result != porcupine.Illegal {
		return true
	}
	dir, err := os.MkdirTemp("", "cairn-nemesis-linear-")
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
