package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestServeNodeServesOnlyNodeRequests: what arrives from another node over
// the node-to-node transport is served without an ACL check, so only the
// requests nodes send each other are: WriteTxnMarkers and AddPartitionsToTxn
// v4 with every transaction VerifyOnly. A produce, a producer's
// AddPartitionsToTxn (v3, or v4 adding partitions) and a malformed body are
// refused; the two node requests are answered in their response's format.
func TestServeNodeServesOnlyNodeRequests(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()

	add := func(version int16, verifyOnly bool) kmsg.Request {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version = version
		if version < 4 {
			req.TransactionalID, req.ProducerID = "t", 1
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = "x", []int32{0}
			req.Topics = append(req.Topics, rt)
			return req
		}
		rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
		rt.TransactionalID, rt.ProducerID, rt.VerifyOnly = "t", 1, verifyOnly
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "x", []int32{0}
		rt.Topics = append(rt.Topics, tt)
		req.Transactions = append(req.Transactions, rt)
		return req
	}
	for name, body := range map[string][]byte{
		"produce":                   nodeRequestBody(kmsg.NewPtrProduceRequest()),
		"AddPartitionsToTxn v3":     nodeRequestBody(add(3, false)),
		"AddPartitionsToTxn v4 add": nodeRequestBody(add(4, false)),
		"short":                     {0, 27},
		"unknown key":               {0x7f, 0x7f, 0, 0},
	} {
		if answer, err := ts.serveNode(ctx, 2, body); err == nil {
			t.Errorf("%s: served (%d bytes), want refused", name, len(answer))
		}
	}

	markers := kmsg.NewPtrWriteTxnMarkersRequest()
	markers.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID = 1
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "absent", []int32{0}
	m.Topics = append(m.Topics, mt)
	markers.Markers = append(markers.Markers, m)
	answer, err := ts.serveNode(ctx, 2, nodeRequestBody(markers))
	if err != nil {
		t.Fatalf("WriteTxnMarkers refused: %v", err)
	}
	mr := kmsg.NewPtrWriteTxnMarkersResponse()
	mr.Version = 1
	if err := mr.ReadFrom(answer); err != nil {
		t.Fatal(err)
	}
	if code := mr.Markers[0].Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("marker for an absent topic answered %v", kerr.ErrorForCode(code))
	}

	answer, err = ts.serveNode(ctx, 2, nodeRequestBody(add(4, true)))
	if err != nil {
		t.Fatalf("VerifyOnly refused: %v", err)
	}
	ar := kmsg.NewPtrAddPartitionsToTxnResponse()
	ar.Version = 4
	if err := ar.ReadFrom(answer); err != nil {
		t.Fatal(err)
	}
	if code := ar.Transactions[0].Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("VerifyOnly for an absent topic answered %v", kerr.ErrorForCode(code))
	}
}
