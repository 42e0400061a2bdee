package kafka

// Fetch sessions (KIP-227). A consumer fetching many partitions sends them
// all once (a full fetch, epoch 0); the node remembers them under a session
// id, and the client's next fetches (epoch 1, 2, …) carry only what changed:
// partitions added or moved to another offset, and forgotten ones. The
// answers leave out partitions with nothing new for the client (no records,
// no error, the same high watermark, last stable offset and log start
// offset as it was last told).
//
// The cache holds at most Config.FetchSessionsMax sessions per node, Kafka's
// max.incremental.fetch.session.cache.slots. When it is full, a new session
// takes the place of the least recently used one if that one has been idle
// for fetchSessionEvictAfter (Kafka's 2 minutes); otherwise the fetch is
// answered without a session (id 0), after which the client fetches in full.
// Unlike Kafka, the size of sessions does not weigh in eviction.
//
// A session ends where its partitions stop being led here: an answer that
// reports NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or an unknown
// partition or topic id for one of them removes it, so the client's next incremental
// fetch gets FETCH_SESSION_ID_NOT_FOUND and starts again in full with the
// partitions it now fetches here.

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/env"
)

// fetchSessionEvictAfter is how long a session must have been idle before
// a new one may take its place in a full cache.
const fetchSessionEvictAfter = 2 * time.Minute

// The epochs of KIP-227: 0 opens a session (or asks for a full fetch),
// -1 closes one (or asks for a fetch without any).
const (
	fetchEpochInitial int32 = 0
	fetchEpochFinal   int32 = -1
)

// sessionKey is a partition of a session: by topic name, and from v13 on
// by topic id as well, so a topic deleted and created again under its name
// is another partition.
type sessionKey struct {
	topic     string
	id        [16]byte
	partition int32
}

// sessionPartition is one partition of a session: what the client last
// asked of it, and what it was last told.
type sessionPartition struct {
	fetch kmsg.FetchRequestTopicPartition
	told  bool
	// The positions last sent to the client, valid when told.
	highWatermark, lastStableOffset, logStartOffset int64
}

type fetchSession struct {
	id     int32
	epoch  int32 // the epoch the next incremental fetch must carry
	usedAt time.Time
	// partitions in the order they are read: added at the end, and moved
	// there when they return records, so that a response filled by the
	// first partitions does not starve the last ones.
	order      []sessionKey
	partitions map[sessionKey]*sessionPartition
}

// fetchSessions is a node's session cache. Its methods are pure but for
// the lock: time comes in as an argument, and session ids from rand.
type fetchSessions struct {
	mu       sync.Mutex
	max      int
	rand     *env.Rand
	sessions map[int32]*fetchSession
}

func newFetchSessions(sessionsMax int, rand *env.Rand) *fetchSessions {
	return &fetchSessions{max: sessionsMax, rand: rand, sessions: map[int32]*fetchSession{}}
}

// fetchContext is one fetch request seen through its session.
type fetchContext struct {
	// errorCode is a session error (FETCH_SESSION_ID_NOT_FOUND,
	// INVALID_FETCH_SESSION_EPOCH): the answer is that alone.
	errorCode int16
	// topics are the partitions to read: the request's for a full fetch,
	// the whole session's for an incremental one.
	topics []kmsg.FetchRequestTopic
	// session is nil for a fetch without one.
	session     *fetchSession
	incremental bool
}

// kind names the fetch for the metrics.
func (fc *fetchContext) kind() string {
	switch {
	case fc.errorCode != 0:
		return "session_error"
	case fc.incremental:
		return "incremental"
	case fc.session != nil:
		return "full"
	}
	return "sessionless"
}

// begin resolves req against the cache: it opens, closes, or advances a
// session, and says what to read.
func (c *fetchSessions) begin(req *kmsg.FetchRequest, now time.Time) fetchContext {
	if req.Version < 7 || c.max <= 0 {
		return fetchContext{topics: req.Topics}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.SessionEpoch == fetchEpochInitial || req.SessionEpoch == fetchEpochFinal {
		if req.SessionID != 0 {
			delete(c.sessions, req.SessionID)
		}
		if req.SessionEpoch == fetchEpochFinal {
			return fetchContext{topics: req.Topics}
		}
		return fetchContext{topics: req.Topics, session: c.open(req, now)}
	}
	s := c.sessions[req.SessionID]
	if s == nil {
		return fetchContext{errorCode: kerr.FetchSessionIDNotFound.Code}
	}
	if req.SessionEpoch != s.epoch {
		return fetchContext{errorCode: kerr.InvalidFetchSessionEpoch.Code}
	}
	s.epoch = nextFetchEpoch(s.epoch)
	s.usedAt = now
	s.update(req.Topics, req.ForgottenTopics)
	return fetchContext{topics: s.requestTopics(), session: s, incremental: true}
}

// nextFetchEpoch follows epoch, wrapping past the largest to 1 as Kafka
// does (0 and -1 have their own meanings).
func nextFetchEpoch(epoch int32) int32 {
	if epoch == math.MaxInt32 {
		return 1
	}
	return epoch + 1
}

// open starts a session for a full fetch, or returns nil when the cache is
// full of sessions still in use. It is called with c.mu held.
func (c *fetchSessions) open(req *kmsg.FetchRequest, now time.Time) *fetchSession {
	if len(c.sessions) >= c.max && !c.evictIdle(now) {
		return nil
	}
	s := &fetchSession{id: c.newID(), epoch: 1, usedAt: now, partitions: map[sessionKey]*sessionPartition{}}
	s.update(req.Topics, nil)
	c.sessions[s.id] = s
	return s
}

// evictIdle removes the least recently used session if it has been idle
// long enough, and says whether it did.
func (c *fetchSessions) evictIdle(now time.Time) bool {
	var oldest *fetchSession
	for _, s := range c.sessions {
		if oldest == nil || s.usedAt.Before(oldest.usedAt) {
			oldest = s
		}
	}
	if oldest == nil || now.Sub(oldest.usedAt) < fetchSessionEvictAfter {
		return false
	}
	delete(c.sessions, oldest.id)
	return true
}

// newID picks an unused positive id at random, so that one client cannot
// guess another's session. It is called with c.mu held, and the cache never
// holds more than a small part of the id space, so it ends quickly.
func (c *fetchSessions) newID() int32 {
	var b [4]byte
	for {
		_, _ = c.rand.Read(b[:])
		id := int32(binary.BigEndian.Uint32(b[:]) & math.MaxInt32)
		if _, used := c.sessions[id]; id != 0 && !used {
			return id
		}
	}
}

// update applies a request's partitions (added, or asked at another offset
// or with other limits) and its forgotten ones to the session.
func (s *fetchSession) update(topics []kmsg.FetchRequestTopic, forgotten []kmsg.FetchRequestForgottenTopic) {
	for _, rt := range topics {
		for _, rp := range rt.Partitions {
			k := sessionKey{rt.Topic, rt.TopicID, rp.Partition}
			rp.UnknownTags = kmsg.Tags{}
			if sp := s.partitions[k]; sp != nil {
				sp.fetch = rp
				continue
			}
			s.partitions[k] = &sessionPartition{fetch: rp}
			s.order = append(s.order, k)
		}
	}
	removed := false
	for _, ft := range forgotten {
		for _, p := range ft.Partitions {
			k := sessionKey{ft.Topic, ft.TopicID, p}
			if _, ok := s.partitions[k]; ok {
				delete(s.partitions, k)
				removed = true
			}
		}
	}
	if removed {
		s.order = slices.DeleteFunc(s.order, func(k sessionKey) bool { return s.partitions[k] == nil })
	}
}

// requestTopics is every partition of the session as a request would list
// them, a topic's partitions together in the order of its first one.
func (s *fetchSession) requestTopics() []kmsg.FetchRequestTopic {
	var topics []kmsg.FetchRequestTopic
	type topicKey struct {
		name string
		id   [16]byte
	}
	index := map[topicKey]int{}
	for _, k := range s.order {
		i, ok := index[topicKey{k.topic, k.id}]
		if !ok {
			i = len(topics)
			index[topicKey{k.topic, k.id}] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = k.topic, k.id
			topics = append(topics, t)
		}
		topics[i].Partitions = append(topics[i].Partitions, s.partitions[k].fetch)
	}
	return topics
}

// finish makes resp the answer of the fetch: it records what the client is
// told, leaves out of an incremental answer the partitions with nothing new,
// and ends a session whose partitions moved away from this node.
func (c *fetchSessions) finish(fc *fetchContext, resp *kmsg.FetchResponse) {
	if fc.session == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := fc.session
	resp.SessionID = s.id
	moved := false
	var fetched []sessionKey
	kept := resp.Topics[:0]
	for _, st := range resp.Topics {
		partitions := st.Partitions[:0]
		for _, sp := range st.Partitions {
			k := sessionKey{st.Topic, st.TopicID, sp.Partition}
			moved = moved || leadershipLost(sp.ErrorCode)
			if len(sp.RecordBatches) > 0 {
				fetched = append(fetched, k)
			}
			if s.tell(k, &sp) || !fc.incremental {
				partitions = append(partitions, sp)
			}
		}
		if len(partitions) > 0 {
			st.Partitions = partitions
			kept = append(kept, st)
		}
	}
	resp.Topics = kept
	s.rotate(fetched)
	if moved && c.sessions[s.id] == s {
		delete(c.sessions, s.id)
	}
}

// tell records what sp tells the client of partition k and says whether
// that is news: an incremental answer carries only news.
func (s *fetchSession) tell(k sessionKey, sp *kmsg.FetchResponseTopicPartition) bool {
	p := s.partitions[k]
	if p == nil { // forgotten by a later request meanwhile
		return true
	}
	news := !p.told || sp.ErrorCode != 0 || len(sp.RecordBatches) > 0 || sp.DivergingEpoch.Epoch >= 0 ||
		p.highWatermark != sp.HighWatermark || p.lastStableOffset != sp.LastStableOffset ||
		p.logStartOffset != sp.LogStartOffset
	p.told = sp.ErrorCode == 0
	p.highWatermark, p.lastStableOffset, p.logStartOffset = sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset
	return news
}

// rotate moves the partitions that returned records to the end of the
// session's order.
func (s *fetchSession) rotate(fetched []sessionKey) {
	if len(fetched) == 0 {
		return
	}
	moving := map[sessionKey]bool{}
	for _, k := range fetched {
		moving[k] = s.partitions[k] != nil
	}
	s.order = slices.DeleteFunc(s.order, func(k sessionKey) bool { return moving[k] })
	for _, k := range fetched {
		if moving[k] {
			s.order = append(s.order, k)
		}
	}
}

// leadershipLost is whether a partition's error says this node no longer
// serves it.
func leadershipLost(code int16) bool {
	switch code {
	case kerr.NotLeaderForPartition.Code, kerr.FencedLeaderEpoch.Code, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicID.Code:
		return true
	}
	return false
}
