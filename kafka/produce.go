package kafka

// Produce v3-v9 (RecordBatch v2 only, as Kafka 4 requires). acks 0, 1 and -1
// (all). With acks=all the response waits until a group-commit fdatasync
// covers every partition's last record; with acks=1 it is sent after the
// write; acks=0 gets no response, and a failed acks=0 produce closes the
// connection. Records become visible to consumers when they are durable (the
// high watermark is the synced log end), so after an acks=1 or acks=0
// produce they appear one group commit later, typically within milliseconds.
//
// Versions 0-2 are listed in ApiVersions but every partition of such a
// request is refused with UNSUPPORTED_VERSION, as Kafka 4 does (KAFKA-18659):
// librdkafka only compresses when it sees Produce v0 advertised.
//
// Deviations from Kafka: transactional produce is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no transaction coordinator), and
// compressed batches are stored exactly as sent (compression.type=producer).

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/partition"
)

func init() { register(kmsg.Produce.Int16(), 0, 9, handleProduce) }

// durableWait is one partition of an acks=all produce waiting for its sync,
// with the response entry its outcome completes: the two travel together
// from the append on, so a wait can never complete another partition's entry.
type durableWait struct {
	p       *partition.Partition
	last    int64
	records int64
	resp    *kmsg.ProduceResponseTopicPartition
}

func handleProduce(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	waits, failed := s.appendAll(c, req, resp)
	switch {
	case req.Acks == 0:
		return reply{none: true, closeAfter: failed}
	case len(waits) == 0:
		return reply{resp: resp}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return reply{wait: func() kmsg.Response {
		ctx, cancel := context.WithTimeout(c.ctx, max(timeout, time.Millisecond))
		defer cancel()
		for _, w := range waits {
			if err := w.p.WaitDurable(ctx, w.last); err != nil {
				setProduceError(w.resp, err)
				continue
			}
			producedRecords.Add(float64(w.records))
		}
		return resp
	}}
}

// produceRefusal returns why every partition of req is refused, or nil.
func produceRefusal(req *kmsg.ProduceRequest) error {
	switch {
	case req.Version < 3:
		return fmt.Errorf("%w: Produce v%d carries message format v0/v1; use v3 or later", kerr.UnsupportedVersion, req.Version)
	case req.TransactionID != nil:
		return kerr.TransactionalIDAuthorizationFailed
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		return kerr.InvalidRequiredAcks
	}
	return nil
}

// appendAll appends every partition's records in request order and fills
// resp, one entry per partition. For acks=all it returns a wait per
// appended partition, holding that partition's entry; failed reports that
// some partition was refused. resp's slices are allocated whole before any
// entry is handed out and never grow after, so the entries the waits hold
// are the ones encoded.
func (s *Server) appendAll(c *conn, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) (waits []durableWait, failed bool) {
	refuse := produceRefusal(req)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti, rt := range req.Topics {
		st := &resp.Topics[ti]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res, err := s.producePartition(rt.Topic, rp, refuse)
			if err != nil {
				failed = true
				setProduceError(sp, err)
				if req.Acks != 0 {
					c.logger.Debug("produce refused", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				continue
			}
			sp.BaseOffset = res.BaseOffset
			sp.LogAppendTime = res.LogAppendTimeMs
			sp.LogStartOffset = res.LogStartOffset
			records := res.LastOffset - res.BaseOffset + 1
			if req.Acks == -1 {
				waits = append(waits, durableWait{p: res.partition, last: res.LastOffset, records: records, resp: sp})
			} else {
				producedRecords.Add(float64(records))
			}
		}
	}
	return waits, failed
}

// setProduceError records err as a partition's outcome.
func setProduceError(sp *kmsg.ProduceResponseTopicPartition, err error) {
	sp.ErrorCode = errorCode(err)
	sp.ErrorMessage = errorMessage(err)
	sp.BaseOffset = -1
}

type produceResult struct {
	partition.AppendResult
	partition *partition.Partition
}

func (s *Server) producePartition(topic string, rp kmsg.ProduceRequestTopicPartition, refuse error) (produceResult, error) {
	if refuse != nil {
		return produceResult{}, refuse
	}
	p, err := s.cluster.Partition(topic, rp.Partition)
	if err != nil {
		return produceResult{}, err
	}
	res, err := p.Append(rp.Records)
	if err != nil {
		return produceResult{}, err
	}
	return produceResult{AppendResult: res, partition: p}, nil
}
