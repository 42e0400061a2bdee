package kafka

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/env"
)

// sessionFetch is a v12 fetch request in session id at epoch, asking for
// each partition of topics at the offset given.
func sessionFetch(id, epoch int32, topics map[string]map[int32]int64, forgotten map[string][]int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.SessionID, req.SessionEpoch = id, epoch
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < 64; p++ {
			if offset, ok := topics[topic][p]; ok {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offset, 1<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		req.Topics = append(req.Topics, rt)
	}
	for topic, partitions := range forgotten {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.Partitions = topic, partitions
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	return req
}

// reads flattens what a fetch context reads into "topic/partition@offset".
func reads(fc fetchContext) []string {
	var out []string
	for _, rt := range fc.topics {
		for _, rp := range rt.Partitions {
			out = append(out, partitionName(rt.Topic, rp.Partition)+"@"+itoa(rp.FetchOffset))
		}
	}
	return out
}

func partitionName(topic string, p int32) string { return topic + "/" + itoa(int64(p)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// answer builds the response a fetch of fc would get, each partition
// with the high watermark hwm[name] and records when data[name].
func answer(fc fetchContext, hwm map[string]int64, data map[string]bool, errs map[string]int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	for _, rt := range fc.topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			name := partitionName(rt.Topic, rp.Partition)
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hwm[name], hwm[name], 0
			sp.ErrorCode = errs[name]
			if data[name] {
				sp.RecordBatches = []byte{1}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func answered(resp *kmsg.FetchResponse) []string {
	var out []string
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			out = append(out, partitionName(st.Topic, sp.Partition))
		}
	}
	return out
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

// TestFetchSessionLifecycle walks one session through KIP-227: opened by a
// full fetch, incremental fetches that add, move and forget partitions and
// read the rest from the session, answers that leave out partitions with
// nothing new, the epoch checks, and closing.
func TestFetchSessionLifecycle(t *testing.T) {
	c := newFetchSessions(10, env.NewSeededRand(1))
	now := time.Unix(1000, 0)

	full := c.begin(sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 5, 1: 7}}, nil), now)
	if full.session == nil || full.incremental || !equalStrings(reads(full), []string{"a/0@5", "a/1@7"}) {
		t.Fatalf("full fetch: session %v incremental %v reads %v", full.session, full.incremental, reads(full))
	}
	resp := answer(full, map[string]int64{"a/0": 10, "a/1": 7}, map[string]bool{"a/0": true}, nil)
	c.finish(&full, resp)
	id := resp.SessionID
	if id <= 0 || !equalStrings(answered(resp), []string{"a/0", "a/1"}) {
		t.Fatalf("full answer: session id %d, partitions %v", id, answered(resp))
	}

	// Epoch 1: a/0 moved on to 10, b/3 added; a/1 is read from the session.
	inc := c.begin(sessionFetch(id, 1, map[string]map[int32]int64{"a": {0: 10}, "b": {3: 0}}, nil), now)
	if inc.errorCode != 0 || !inc.incremental {
		t.Fatalf("incremental fetch: error %d incremental %v", inc.errorCode, inc.incremental)
	}
	// a/0 returned records last time, so it went to the end of the order.
	if got := reads(inc); !equalStrings(got, []string{"a/1@7", "a/0@10", "b/3@0"}) {
		t.Fatalf("incremental reads %v", got)
	}
	// Nothing new on a/0 and a/1; b/3 is new to the client.
	resp = answer(inc, map[string]int64{"a/0": 10, "a/1": 7, "b/3": 0}, nil, nil)
	c.finish(&inc, resp)
	if got := answered(resp); !equalStrings(got, []string{"b/3"}) || resp.SessionID != id {
		t.Fatalf("incremental answer: session %d partitions %v, want %d [b/3]", resp.SessionID, got, id)
	}

	// Epoch 2: a/1's high watermark moved: news, even without records.
	inc = c.begin(sessionFetch(id, 2, nil, map[string][]int32{"b": {3}}), now)
	if got := reads(inc); !equalStrings(got, []string{"a/1@7", "a/0@10"}) {
		t.Fatalf("after forgetting b/3, reads %v", got)
	}
	resp = answer(inc, map[string]int64{"a/0": 10, "a/1": 9}, nil, nil)
	c.finish(&inc, resp)
	if got := answered(resp); !equalStrings(got, []string{"a/1"}) {
		t.Fatalf("answer after a/1's high watermark moved: %v", got)
	}

	// A replayed or skipped epoch, and an unknown session.
	if fc := c.begin(sessionFetch(id, 2, nil, nil), now); fc.errorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("replayed epoch: error %d", fc.errorCode)
	}
	if fc := c.begin(sessionFetch(id+1, 1, nil, nil), now); fc.errorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d", fc.errorCode)
	}

	// Epoch -1 closes it: a full fetch without a session, then the id is gone.
	closing := c.begin(sessionFetch(id, -1, map[string]map[int32]int64{"a": {0: 10}}, nil), now)
	if closing.session != nil || !equalStrings(reads(closing), []string{"a/0@10"}) {
		t.Fatalf("closing fetch: session %v reads %v", closing.session, reads(closing))
	}
	if fc := c.begin(sessionFetch(id, 3, nil, nil), now); fc.errorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still answers: error %d", fc.errorCode)
	}
}

// TestFetchSessionEndsWhenLeadershipMoves: an answer reporting that a
// partition of the session is no longer led here ends the session, so the
// client starts over in full.
func TestFetchSessionEndsWhenLeadershipMoves(t *testing.T) {
	for _, code := range []int16{kerr.NotLeaderForPartition.Code, kerr.FencedLeaderEpoch.Code, kerr.UnknownTopicOrPartition.Code} {
		c := newFetchSessions(10, env.NewSeededRand(2))
		now := time.Unix(1000, 0)
		full := c.begin(sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 0, 1: 0}}, nil), now)
		resp := answer(full, nil, nil, nil)
		c.finish(&full, resp)
		inc := c.begin(sessionFetch(resp.SessionID, 1, nil, nil), now)
		resp = answer(inc, nil, nil, map[string]int16{"a/1": code})
		c.finish(&inc, resp)
		if got := answered(resp); !equalStrings(got, []string{"a/1"}) {
			t.Fatalf("error %d: the partition in error must be answered, got %v", code, got)
		}
		if fc := c.begin(sessionFetch(resp.SessionID, 2, nil, nil), now); fc.errorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("error %d: session kept (error %d)", code, fc.errorCode)
		}
	}
}

// TestFetchSessionCacheFull: a full cache gives a new fetch no session
// until its least recently used session has been idle long enough, and then
// that one makes way.
func TestFetchSessionCacheFull(t *testing.T) {
	c := newFetchSessions(2, env.NewSeededRand(3))
	start := time.Unix(1000, 0)
	open := func(now time.Time) int32 {
		fc := c.begin(sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 0}}, nil), now)
		resp := answer(fc, nil, nil, nil)
		c.finish(&fc, resp)
		return resp.SessionID
	}
	first, second := open(start), open(start.Add(time.Second))
	if first == 0 || second == 0 || first == second {
		t.Fatalf("sessions %d and %d", first, second)
	}
	// first is used again later than second: second is now the idlest.
	c.begin(sessionFetch(first, 1, nil, nil), start.Add(time.Minute))
	if id := open(start.Add(time.Minute)); id != 0 {
		t.Fatalf("full cache gave session %d while every session is in use", id)
	}
	third := open(start.Add(time.Second + fetchSessionEvictAfter))
	if third == 0 {
		t.Fatal("no session after the idlest one's eviction time")
	}
	if fc := c.begin(sessionFetch(second, 1, nil, nil), start.Add(3*time.Minute)); fc.errorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the idlest session was not the one evicted (error %d)", fc.errorCode)
	}
	if fc := c.begin(sessionFetch(first, 2, nil, nil), start.Add(3*time.Minute)); fc.errorCode != 0 {
		t.Fatalf("the recently used session was evicted (error %d)", fc.errorCode)
	}
}

// TestFetchSessionsOffOrOld: versions before 7 and a zero limit keep no
// session.
func TestFetchSessionsOffOrOld(t *testing.T) {
	req := sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 0}}, nil)
	if fc := newFetchSessions(0, env.NewSeededRand(4)).begin(req, time.Unix(0, 0)); fc.session != nil {
		t.Fatal("a session with sessions off")
	}
	req.Version = 6
	if fc := newFetchSessions(10, env.NewSeededRand(4)).begin(req, time.Unix(0, 0)); fc.session != nil {
		t.Fatal("a session at v6")
	}
	if nextFetchEpoch(math.MaxInt32) != 1 || nextFetchEpoch(5) != 6 {
		t.Fatal("epoch wrap")
	}
}
