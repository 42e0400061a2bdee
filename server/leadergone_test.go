package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// TestClusterMetadataNamesTheNewLeaderAfterAClose: Metadata asked of a
// surviving node right after it saw a partition's leader node close names
// the new leader, never the closed node nor no leader: the survivors find
// the closed node gone and elect at once, and the answer waits for that
// election rather than send a franz-go client away for MetadataMinAge.
func TestClusterMetadataNamesTheNewLeaderAfterAClose(t *testing.T) {
	tc := startCluster(t)
	const topic = "metadata-after-close"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)
	for round := range 2 {
		lead := tc.leaderOf(topic, 0)
		var survivor int32
		for id := range tc.servers {
			if id != lead {
				survivor = id
				break
			}
		}
		client := newFailoverClient(t, tc)
		broker := client.Broker(int(survivor))
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		if _, err := broker.Request(ctx, req); err != nil { // connected before the close
			t.Fatal(err)
		}
		closing := time.Now()
		tc.stop(lead)
		// In one process the survivor's transport may read the closed
		// connection's end a moment after Close returns: ask once it has
		// (in a real death, the client too first has to see its own
		// connection fail and redial).
		deadline := time.Now().Add(failoverStageWaitMax)
		for {
			l, err := tc.servers[survivor].Cluster().Leader(topic, 0)
			if err == nil && (l.Node != lead || l.Disconnected) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: node %d still sees node %d connected and leading", round, survivor, lead)
			}
			time.Sleep(time.Millisecond) // polling the survivor's view: no event to wait on from here
		}
		asked := time.Now()
		r, err := broker.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		mp := r.(*kmsg.MetadataResponse).Topics[0].Partitions[0]
		t.Logf("round %d: node %d closed in %s; node %d answered Metadata %s later: leader %d epoch %d error %d",
			round, lead, asked.Sub(closing).Round(time.Millisecond), survivor, time.Since(asked).Round(time.Millisecond), mp.Leader, mp.LeaderEpoch, mp.ErrorCode)
		if mp.ErrorCode != 0 || mp.Leader < 1 || mp.Leader == lead {
			t.Fatalf("round %d: Metadata names leader %d (error %d) after node %d closed, want a surviving node", round, mp.Leader, mp.ErrorCode, lead)
		}
		tc.restart(lead)
	}
}

// TestClusterConnectionResetsKeepTheLeader: the connections of a
// partition's leader node are reset again and again (its proxy resets
// them both ways, and every new one for 100 ms) while it stays up: its
// peers' probes and redials are accepted, then reset, never refused, so no
// node takes it for gone, and it keeps its leadership in the same epoch.
func TestClusterConnectionResetsKeepTheLeader(t *testing.T) {
	tc := startClusterWith(t, &testCluster{t: t, proxied: true})
	const topic = "resets"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)
	index := partitionLedBy(ctx, t, tc, topic, isolated)
	before, err := tc.servers[isolated].Cluster().Leader(topic, index)
	if err != nil {
		t.Fatal(err)
	}
	proxy := tc.proxies[isolated]
	for round := range 5 {
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Reset})
		// Long enough for probes and redials to meet the resets, well
		// within the election timeout (0.6 s).
		time.Sleep(100 * time.Millisecond)
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
		// Both other nodes dial node 3 (the lower id dials): wait until
		// both are through again.
		deadline := time.Now().Add(failoverStageWaitMax)
		for proxy.Connections() < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d connections to node %d after the reset", round, proxy.Connections(), isolated)
			}
			time.Sleep(5 * time.Millisecond) // polling the proxy's connection count
		}
	}
	for id, s := range tc.servers {
		st := s.Cluster().Stats()
		t.Logf("node %d: %d peers found gone, %d elections started", id, st.Transport.PeersGone, st.ElectionsStarted)
	}
	if lead := tc.leaderOf(topic, index); lead != isolated {
		t.Fatalf("node %d leads %s-%d after the resets, want node %d", lead, topic, index, isolated)
	}
	for id, s := range tc.servers {
		l, err := s.Cluster().Leader(topic, index)
		if err != nil {
			t.Fatal(err)
		}
		if l.Epoch != before.Epoch {
			t.Errorf("node %d sees epoch %d, want %d: an election ran", id, l.Epoch, before.Epoch)
		}
		if gone := s.Cluster().Stats().Transport.PeersGone; gone != 0 {
			t.Errorf("node %d found %d peers gone, want none", id, gone)
		}
	}
}
