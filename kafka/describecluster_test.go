package kafka

import (
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeClusterVersions proves both served versions (v0 and v1, both
// flexible) describe this node as the only broker and the controller, at the
// advertised address, and that v1 refuses the controllers endpoint type.
func TestDescribeClusterVersions(t *testing.T) {
	ts := startServer(t)
	host, portText, err := net.SplitHostPort(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []int16{0, 1} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version = version
		resp := ts.dial(t).roundTrip(req).(*kmsg.DescribeClusterResponse)
		if resp.ErrorCode != 0 || resp.ClusterID != ts.cluster.ID() || resp.ControllerID != ts.cluster.NodeID() || len(resp.Brokers) != 1 {
			t.Fatalf("v%d: %s, cluster %q, controller %d, %d brokers", version, codeOf(resp.ErrorCode), resp.ClusterID, resp.ControllerID, len(resp.Brokers))
		}
		b := resp.Brokers[0]
		if b.NodeID != ts.cluster.NodeID() || b.Host != host || strconv.Itoa(int(b.Port)) != portText || b.Rack != nil {
			t.Errorf("v%d: broker %+v, want %s:%s", version, b, host, portText)
		}
		if version >= 1 && resp.EndpointType != 1 {
			t.Errorf("v%d: endpoint type %d, want 1", version, resp.EndpointType)
		}
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version, req.EndpointType = 1, 2
	resp := ts.dial(t).roundTrip(req).(*kmsg.DescribeClusterResponse)
	if resp.ErrorCode != kerr.UnsupportedEndpointType.Code || resp.ErrorMessage == nil || len(resp.Brokers) != 0 {
		t.Errorf("controllers endpoint: %s (%v), %d brokers", codeOf(resp.ErrorCode), resp.ErrorMessage, len(resp.Brokers))
	}
}

// TestBrokerMetadataAndDescribeClusterWithKadm proves franz-go sees the same
// single broker and cluster id through Metadata and DescribeCluster.
func TestBrokerMetadataAndDescribeClusterWithKadm(t *testing.T) {
	ts := startServer(t)
	cl := ts.client(t)
	adm := kadm.NewClient(cl)
	ctx := adminContext(t)
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Cluster != ts.cluster.ID() || meta.Controller != ts.cluster.NodeID() || len(meta.Brokers) != 1 {
		t.Fatalf("metadata: cluster %q, controller %d, brokers %+v", meta.Cluster, meta.Controller, meta.Brokers)
	}
	resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ClusterID != meta.Cluster || len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != meta.Brokers[0].NodeID ||
		resp.Brokers[0].Host != meta.Brokers[0].Host || resp.Brokers[0].Port != meta.Brokers[0].Port {
		t.Errorf("DescribeCluster %+v disagrees with Metadata %+v", resp, meta)
	}
}
