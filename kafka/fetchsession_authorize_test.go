package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/auth"
)

// TestFetchSessionPartitionsStayAuthorized: a partition in a session is
// authorized again at every fetch, though the client no longer names it:
// once Read on its topic is revoked, the next incremental fetch answers it
// TOPIC_AUTHORIZATION_FAILED, while the other partition reads on.
func TestFetchSessionPartitionsStayAuthorized(t *testing.T) {
	ts := authServer(t, false)
	testPrincipals.Store("test", auth.User("alice")) // the raw connection's client id
	t.Cleanup(func() { testPrincipals.Delete("test") })
	createTopics(t, ts, "open", "closed")
	for _, topic := range []string{"open", "closed"} {
		if err := ts.as(t, "admin").ProduceSync(testContext(t), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	grant(t, ts, kadm.NewACLs().Topics("open", "closed").Allow("User:alice").Operations(kadm.OpRead))

	rc := ts.dial(t)
	full := sessionFetch(0, 0, map[string]map[int32]int64{"open": {0: 0}, "closed": {0: 0}}, nil)
	resp := rc.roundTrip(full).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || resp.SessionID == 0 {
		t.Fatalf("full fetch: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	for _, st := range resp.Topics {
		if sp := st.Partitions[0]; sp.ErrorCode != 0 || len(sp.RecordBatches) == 0 {
			t.Fatalf("full fetch of %s: error %d, %d bytes", st.Topic, sp.ErrorCode, len(sp.RecordBatches))
		}
	}

	deleted, err := kadm.NewClient(ts.as(t, "admin")).DeleteACLs(testContext(t),
		kadm.NewACLs().Topics("closed").Allow("User:alice").AllowHosts().Operations(kadm.OpRead))
	if err != nil || len(deleted) != 1 || deleted[0].Err != nil {
		t.Fatalf("revoke: %v %+v", err, deleted)
	}
	// Epoch 1 moves "open" past its record and names nothing else.
	inc := sessionFetch(resp.SessionID, 1, map[string]map[int32]int64{"open": {0: 1}}, nil)
	resp = rc.roundTrip(inc).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("incremental fetch: error %d", resp.ErrorCode)
	}
	answered := map[string]int16{}
	for _, st := range resp.Topics {
		answered[st.Topic] = st.Partitions[0].ErrorCode
	}
	if code, ok := answered["closed"]; !ok || code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("revoked topic in the session: answered %v (error %d), want TOPIC_AUTHORIZATION_FAILED", ok, code)
	}
	if code := answered["open"]; code != 0 {
		t.Fatalf("readable topic: error %d", code)
	}
}
