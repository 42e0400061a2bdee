package kafka

// Fetch v4-v13. Long polls until MinBytes are available or MaxWaitMillis
// (capped by Config.FetchWaitMax) passes; honours the response MaxBytes and
// each PartitionMaxBytes, always returning the first batch whole so a
// consumer can progress past a batch larger than its limits (KIP-74). Only
// the partition's leader serves it (NOT_LEADER_OR_FOLLOWER elsewhere; no
// fetching from followers, KIP-392), after checking the client's current
// leader epoch (v9+, KIP-320). v12 responses to NOT_LEADER_OR_FOLLOWER and
// FENCED_LEADER_EPOCH carry the leader this node knows of (CurrentLeader,
// KIP-951), so clients re-route without asking Metadata first. The high
// watermark is the partition's: what a quorum committed on a replicated
// partition, the durable log end on a single writer. Every partition's
// reply carries its last stable offset; a read_committed fetch
// (IsolationLevel 1) reads up to it only and lists the aborted
// transactions its records overlap, which the client drops.
// v13 names topics by id (KIP-516): ids this node does not know are
// answered UNKNOWN_TOPIC_ID.
// Fetch sessions (KIP-227, fetchsession.go) are kept: a v7+ fetch may open
// one and then send only what changed, and the answers leave out
// partitions with nothing new. Every partition of a session is authorized
// and read again at each fetch, as if the client had listed it.
// On a plain TCP connection the records are sent from the segment files
// with sendfile (zerocopy.go), as Kafka does.
// Deviations from Kafka: v12's LastFetchedEpoch is checked for divergence
// as Kafka does for followers.

import (
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage"
)

func init() { register(kmsg.Fetch.Int16(), 4, 13, handleFetch) }

func handleFetch(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.FetchRequest)
	s.nameFetchTopics(req)
	fc := s.fetchSessions.begin(req, s.clock.Now())
	fetchRequests.WithLabelValues(fc.kind()).Inc()
	if fc.errorCode != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = fc.errorCode
		return reply{resp: resp}
	}
	// The request as if it listed every partition the fetch reads.
	whole := *req
	whole.Topics, whole.ForgottenTopics = fc.topics, nil
	buf := getBuffer()
	var files *fileParts
	if c.zeroCopy() != nil {
		files = &fileParts{marker: s.placeholderMarker}
	}
	release := func() {
		putBuffer(buf)
		if files != nil {
			files.release()
		}
	}
	denied := fetchDenied(c, &whole)
	resp, bytes, watch := s.buildFetch(&whole, buf, files, denied)
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, s.cfg.FetchWaitMax)
	if bytes >= int(req.MinBytes) || wait <= 0 || len(watch) == 0 {
		fetchedBytes.Add(float64(bytes))
		s.fetchSessions.finish(&fc, resp)
		return reply{resp: resp, release: release, files: files}
	}
	// Reads before the last are only looked at for their size: their
	// segment files are let go at once, not held through the long poll
	// (a suffix truncation of the log waits for its readers).
	if files != nil {
		files.release()
	}
	return reply{release: release, files: files, wait: func() kmsg.Response {
		// On the node's clock, so that a simulated cluster's long polls
		// end in simulated time.
		deadline := s.cluster.Env().Clock.NewTimer(wait)
		defer deadline.Stop()
		for {
			if !waitAny(watch, deadline.C(), c.ctx.Done()) {
				break
			}
			resp, bytes, watch = s.buildFetch(&whole, buf, files, denied)
			if files != nil {
				files.release()
			}
			if bytes >= int(req.MinBytes) || len(watch) == 0 {
				break
			}
		}
		resp, bytes, _ = s.buildFetch(&whole, buf, files, denied)
		fetchedBytes.Add(float64(bytes))
		s.fetchSessions.finish(&fc, resp)
		return resp
	}}
}

// nameFetchTopics sets the names of the topics a v13+ request names by id;
// a topic whose id is unknown here keeps an empty name.
func (s *Server) nameFetchTopics(req *kmsg.FetchRequest) {
	if req.Version < 13 {
		return
	}
	for i := range req.Topics {
		if t, ok := s.view.TopicByID(req.Topics[i].TopicID); ok {
			req.Topics[i].Topic = t.Name
		}
	}
	for i := range req.ForgottenTopics {
		if t, ok := s.view.TopicByID(req.ForgottenTopics[i].TopicID); ok {
			req.ForgottenTopics[i].Topic = t.Name
		}
	}
}

// fetchDenied is the topics of req the connection may not read: all of
// them for a follower's fetch without ClusterAction, as in Kafka.
func fetchDenied(c *conn, req *kmsg.FetchRequest) map[string]bool {
	if !c.s.authorizing() {
		return nil
	}
	follower := req.ReplicaID >= 0
	if follower && c.allowedCluster(acl.OpClusterAction) {
		return nil
	}
	denied := map[string]bool{}
	for _, rt := range req.Topics {
		if follower || !c.allowedTopic(acl.OpRead, rt.Topic) {
			denied[rt.Topic] = true
		}
	}
	return denied
}

// waitAny blocks until one of the partitions' channels fires (true) or the
// deadline or connection ends (false).
func waitAny(watch []<-chan struct{}, deadline <-chan time.Time, done <-chan struct{}) bool {
	if len(watch) == 1 {
		select {
		case <-watch[0]:
			return true
		case <-deadline:
		case <-done:
		}
		return false
	}
	cases := make([]reflect.SelectCase, 0, len(watch)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)})
	for _, ch := range watch {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}

// buildFetch reads every requested partition now. It returns the response,
// the record bytes in it, and the channels of the partitions worth waiting
// on (those read without error); a partition error ends the long poll, so
// watch is nil then. The records are read into buf, which the response
// then refers to, or with files set taken as file sections where they can
// be sent with sendfile (zerocopy.go); a previous response built on buf and
// files is overwritten.
func (s *Server) buildFetch(req *kmsg.FetchRequest, buf *[]byte, files *fileParts, denied map[string]bool) (*kmsg.FetchResponse, int, []<-chan struct{}) {
	*buf = (*buf)[:0]
	if files != nil {
		files.release()
	}
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	remaining := int(req.MaxBytes)
	if req.MaxBytes <= 0 {
		remaining = int(^uint32(0) >> 1)
	}
	total := 0
	var watch []<-chan struct{}
	anyError := false
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		unknownID := req.Version >= 13 && rt.Topic == ""
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.PreferredReadReplica = -1
			// Never null: librdkafka rejects a null record set.
			sp.RecordBatches = []byte{}
			requested := int32(-1)
			if req.Version >= 9 {
				requested = rp.CurrentLeaderEpoch
			}
			var p *partition.Partition
			var l cluster.Leader
			err := error(kerr.TopicAuthorizationFailed)
			if unknownID {
				err = kerr.UnknownTopicID
			} else if !denied[rt.Topic] {
				p, l, err = s.leaderPartition(rt.Topic, rp.Partition, requested)
			}
			if err == nil {
				watch = append(watch, p.Changed())
				err = s.fetchPartition(req, p, rp, &sp, &remaining, &total, buf, files)
			}
			if err != nil {
				anyError = true
				sp.ErrorCode = errorCode(err)
				setCurrentLeader(&sp, l)
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
				if p != nil && errors.Is(err, partition.ErrOffsetOutOfRange) {
					sp.HighWatermark = p.HighWatermark()
					sp.LastStableOffset, sp.LogStartOffset = p.LastStableOffset(), p.LogStartOffset()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if anyError {
		watch = nil
	}
	return resp, total, watch
}

// setCurrentLeader tells a client fetching from the wrong node, or with an
// older epoch, the leader to go to (KIP-951; encoded from v12 on).
func setCurrentLeader(sp *kmsg.FetchResponseTopicPartition, l cluster.Leader) {
	fenced := sp.ErrorCode == kerr.FencedLeaderEpoch.Code
	// NOT_LEADER_OR_FOLLOWER on a local leader: it lost the lead while
	// reading, and knows no new leader yet.
	moved := sp.ErrorCode == kerr.NotLeaderForPartition.Code && !l.Local
	if fenced || moved {
		sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = l.Node, l.Epoch
	}
}

func (s *Server) fetchPartition(req *kmsg.FetchRequest, p *partition.Partition, rp kmsg.FetchRequestTopicPartition,
	sp *kmsg.FetchResponseTopicPartition, remaining, total *int, buf *[]byte, files *fileParts) error {
	if req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
		epoch, end := p.EndOffsetForEpoch(rp.LastFetchedEpoch)
		if epoch < rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = epoch, end
			sp.HighWatermark = p.HighWatermark()
			sp.LastStableOffset, sp.LogStartOffset = p.LastStableOffset(), p.LogStartOffset()
			return nil
		}
	}
	limit := min(int(rp.PartitionMaxBytes), *remaining)
	if *total > 0 && limit <= 0 {
		// The response is full: report positions without data.
		sp.HighWatermark = p.HighWatermark()
		sp.LastStableOffset, sp.LogStartOffset = p.LastStableOffset(), p.LogStartOffset()
		return nil
	}
	committed := req.IsolationLevel == 1
	if files != nil {
		done, err := fetchSections(p, rp, sp, limit, *total, committed, files)
		if err != nil || done >= 0 {
			*total += max(done, 0)
			*remaining -= max(done, 0)
			return err
		}
	}
	res, grown, err := p.ReadAppendIsolated(*buf, rp.FetchOffset, max(limit, 1), committed)
	if err != nil {
		return err
	}
	sp.HighWatermark = res.HighWatermark
	sp.LastStableOffset = res.LastStableOffset
	sp.LogStartOffset = res.LogStartOffset
	// Only the first batch of the whole response may exceed the limits.
	if *total > 0 && len(res.Records) > limit {
		return nil
	}
	*buf = grown
	if len(res.Records) > 0 {
		sp.RecordBatches = res.Records
		setAborted(sp, res.Aborted)
	}
	*total += len(res.Records)
	*remaining -= len(res.Records)
	return nil
}

// fetchSections is fetchPartition's read as file sections, for a response
// sent with sendfile. It returns the record bytes taken, or -1 when the
// partition's files cannot be sent so (then nothing was taken: read them).
func fetchSections(p *partition.Partition, rp kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
	limit, total int, committed bool, files *fileParts) (int, error) {
	res, sections, err := p.ReadSectionsIsolated(nil, rp.FetchOffset, max(limit, 1), committed)
	if err != nil {
		return 0, err
	}
	if !sendable(sections) {
		storage.ReleaseSections(sections)
		return -1, nil
	}
	sp.HighWatermark = res.HighWatermark
	sp.LastStableOffset = res.LastStableOffset
	sp.LogStartOffset = res.LogStartOffset
	n := sectionsBytes(sections)
	// Only the first batch of the whole response may exceed the limits.
	if n == 0 || (total > 0 && n > limit) {
		storage.ReleaseSections(sections)
		return 0, nil
	}
	sp.RecordBatches = files.add(sections)
	setAborted(sp, res.Aborted)
	return n, nil
}

// setAborted lists the aborted transactions of a read_committed read.
func setAborted(sp *kmsg.FetchResponseTopicPartition, aborted []partition.AbortedTxn) {
	for _, a := range aborted {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		sp.AbortedTransactions = append(sp.AbortedTransactions, at)
	}
}
