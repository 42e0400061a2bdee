package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/txn"
)

// rawTxnBatch is a transactional batch of one record of producer pid.
func rawTxnBatch(t *testing.T, pid int64, epoch int16, seq int32) []byte {
	t.Helper()
	b, err := batch.Encode(batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Attributes: batch.TransactionalAttribute},
		0, []batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("v")}}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func codeErr(code int16) error { return kerr.ErrorForCode(code) }

// TestTxnRequestsOnTheWire drives the transaction APIs with raw requests at
// the versions clients send: AddPartitionsToTxn v3 (an unknown topic makes
// the others OPERATION_NOT_ATTEMPTED) and the v4 batched form with
// VerifyOnly, a transactional Produce, Fetch at both isolation levels
// (last stable offset, aborted transactions), EndTxn, DescribeTransactions,
// ListTransactions with an unknown state filter, DescribeProducers,
// WriteTxnMarkers, and fencing of a stale epoch.
func TestTxnRequestsOnTheWire(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("raw", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	const id = "raw-txn"
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.SetVersion(3)
	find.CoordinatorKey, find.CoordinatorType = id, 1
	if resp := rc.roundTrip(find).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != 0 || resp.NodeID != ts.cluster.NodeID() {
		t.Fatalf("find coordinator: %+v", resp)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.SetVersion(4)
	init.TransactionalID, init.TransactionTimeoutMillis, init.ProducerID, init.ProducerEpoch = kmsg.StringPtr(id), 60_000, -1, -1
	initResp := rc.roundTrip(init).(*kmsg.InitProducerIDResponse)
	if initResp.ErrorCode != 0 {
		t.Fatalf("init: %v", codeErr(initResp.ErrorCode))
	}
	pid, epoch := initResp.ProducerID, initResp.ProducerEpoch

	add3 := kmsg.NewPtrAddPartitionsToTxnRequest()
	add3.SetVersion(3)
	add3.TransactionalID, add3.ProducerID, add3.ProducerEpoch = id, pid, epoch
	for _, topic := range []string{"raw", "nope"} {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		add3.Topics = append(add3.Topics, rt)
	}
	codes := map[string]int16{}
	for _, rt := range rc.roundTrip(add3).(*kmsg.AddPartitionsToTxnResponse).Topics {
		codes[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if codes["raw"] != kerr.OperationNotAttempted.Code || codes["nope"] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("v3 with an unknown topic: %v", codes)
	}

	add4 := func(verifyOnly bool) int16 {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(4)
		tr := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tr.TransactionalID, tr.ProducerID, tr.ProducerEpoch, tr.VerifyOnly = id, pid, epoch, verifyOnly
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "raw", []int32{0}
		tr.Topics = append(tr.Topics, tt)
		req.Transactions = append(req.Transactions, tr)
		resp := rc.roundTrip(req).(*kmsg.AddPartitionsToTxnResponse)
		if resp.ErrorCode != 0 || len(resp.Transactions) != 1 || resp.Transactions[0].TransactionalID != id {
			t.Fatalf("v4: %+v", resp)
		}
		return resp.Transactions[0].Topics[0].Partitions[0].ErrorCode
	}
	if code := add4(true); code != kerr.InvalidTxnState.Code {
		t.Fatalf("verify before the partition was added: %v", codeErr(code))
	}
	if code := add4(false); code != 0 {
		t.Fatalf("add: %v", codeErr(code))
	}
	if code := add4(true); code != 0 {
		t.Fatalf("verify after the partition was added: %v", codeErr(code))
	}

	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	produce.TransactionID, produce.Acks, produce.TimeoutMillis = kmsg.StringPtr(id), -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "raw"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition, pp.Records = 0, rawTxnBatch(t, pid, epoch, 0)
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	if code := rc.roundTrip(produce).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("transactional produce: %v", codeErr(code))
	}

	fetch := func(level int8) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, level
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "raw"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = 0, 1<<20, -1, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		sp := rc.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if sp.ErrorCode != 0 {
			t.Fatalf("fetch isolation %d: %v", level, codeErr(sp.ErrorCode))
		}
		return sp
	}
	if sp := fetch(1); sp.LastStableOffset != 0 || sp.HighWatermark != 1 || len(sp.RecordBatches) != 0 {
		t.Fatalf("read_committed with the transaction open: LSO %d HWM %d, %d bytes", sp.LastStableOffset, sp.HighWatermark, len(sp.RecordBatches))
	}
	if sp := fetch(0); sp.LastStableOffset != 0 || len(sp.RecordBatches) == 0 {
		t.Fatalf("read_uncommitted with the transaction open: LSO %d, %d bytes", sp.LastStableOffset, len(sp.RecordBatches))
	}

	end := func(e int16) int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.SetVersion(3)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, e, false
		return rc.roundTrip(req).(*kmsg.EndTxnResponse).ErrorCode
	}
	if code := end(epoch + 5); code != kerr.ProducerFenced.Code {
		t.Fatalf("end with another epoch: %v", codeErr(code))
	}
	if code := end(epoch); code != 0 {
		t.Fatalf("abort: %v", codeErr(code))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		describe := kmsg.NewPtrDescribeTransactionsRequest()
		describe.TransactionalIDs = []string{id, "unknown-id"}
		states := rc.roundTrip(describe).(*kmsg.DescribeTransactionsResponse).TransactionStates
		if states[1].ErrorCode != kerr.TransactionalIDNotFound.Code {
			t.Fatalf("describe an unknown id: %v", codeErr(states[1].ErrorCode))
		}
		if states[0].State == txn.CompleteAbort.String() && states[0].ProducerID == pid {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("never completed: %+v", states[0])
		}
		time.Sleep(10 * time.Millisecond) // markers are written after the answer
	}
	sp := fetch(1)
	if sp.LastStableOffset != 2 || sp.HighWatermark != 2 || len(sp.AbortedTransactions) != 1 ||
		sp.AbortedTransactions[0].ProducerID != pid || sp.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("read_committed after the abort: LSO %d HWM %d aborted %+v", sp.LastStableOffset, sp.HighWatermark, sp.AbortedTransactions)
	}

	list := kmsg.NewPtrListTransactionsRequest()
	list.SetVersion(1)
	list.StateFilters, list.DurationFilterMillis = []string{"CompleteAbort", "Bogus"}, -1
	listResp := rc.roundTrip(list).(*kmsg.ListTransactionsResponse)
	if len(listResp.TransactionStates) != 1 || listResp.TransactionStates[0].TransactionalID != id ||
		fmt.Sprint(listResp.UnknownStateFilters) != "[Bogus]" {
		t.Fatalf("list: %+v", listResp)
	}

	producers := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "raw", []int32{0}
	producers.Topics = append(producers.Topics, dt)
	dp := rc.roundTrip(producers).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
	if dp.ErrorCode != 0 || len(dp.ActiveProducers) != 1 || dp.ActiveProducers[0].ProducerID != pid || dp.ActiveProducers[0].CurrentTxnStartOffset != -1 ||
		dp.ActiveProducers[0].CoordinatorEpoch < 0 {
		t.Fatalf("describe producers: %+v; want the coordinator epoch of the ABORT marker", dp)
	}

	markers := kmsg.NewPtrWriteTxnMarkersRequest()
	markers.SetVersion(1)
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = pid, epoch, false, 7
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "raw", []int32{0}
	m.Topics = append(m.Topics, mt)
	markers.Markers = append(markers.Markers, m)
	if code := rc.roundTrip(markers).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("a marker with no transaction open: %v", codeErr(code))
	}
	// DescribeProducers reports the coordinator epoch of the last marker.
	dp = rc.roundTrip(producers).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
	if dp.ErrorCode != 0 || len(dp.ActiveProducers) != 1 || dp.ActiveProducers[0].CoordinatorEpoch != 7 {
		t.Fatalf("describe producers after a marker of coordinator epoch 7: %+v", dp)
	}
	// A late batch of the ended transaction is refused (KIP-890).
	pp.Records = rawTxnBatch(t, pid, epoch, 1)
	produce.Topics[0].Partitions[0] = pp
	if code := rc.roundTrip(produce).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Fatalf("late batch: %v, want INVALID_TXN_STATE", codeErr(code))
	}
}
