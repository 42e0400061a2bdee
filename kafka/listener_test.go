package kafka

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
)

// TestListenersGiveTheirOwnAddresses: a server with two listeners answers
// Metadata, DescribeCluster and FindCoordinator with the addresses of the
// listener each client connected to: this node at that listener's
// advertised address, another broker at its registered address for that
// listener name (or its Kafka address when it registered no listeners),
// and a broker without a listener of that name left out.
func TestListenersGiveTheirOwnAddresses(t *testing.T) {
	view := func(c *cluster.Cluster) clusterView {
		return &fakeView{Cluster: c, controller: c.NodeID(), brokers: []cluster.Broker{
			{NodeID: 2, KafkaAddr: "b2:9092", Listeners: map[string]string{DefaultListenerName: "b2:9092", "OTHER": "b2-other:9094"}},
			{NodeID: 3, KafkaAddr: "b3:9092"},
			{NodeID: 4, KafkaAddr: "b4:9092", Listeners: map[string]string{DefaultListenerName: "b4:9092"}},
		}}
	}
	ts := startServerView(t, view, func(c *Config) {
		c.Listeners = []Listener{
			{Name: DefaultListenerName, Protocol: Plaintext, AdvertisedAddr: c.AdvertisedAddr},
			{Name: "OTHER", Protocol: Plaintext, AdvertisedAddr: "self-other:9094"},
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.ServeListener("OTHER", ln) }()
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	other := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	self := ts.cluster.NodeID()

	for _, tc := range []struct {
		name string
		rc   *rawConn
		want string
	}{
		{DefaultListenerName, ts.dial(t), fmt.Sprintf("[%d %s 2 b2:9092 3 b3:9092 4 b4:9092]", self, ts.addr)},
		{"OTHER", other, fmt.Sprintf("[%d self-other:9094 2 b2-other:9094 3 b3:9092]", self)},
	} {
		meta := tc.rc.roundTrip(metadataRequest(12)).(*kmsg.MetadataResponse)
		var got []string
		for _, b := range meta.Brokers {
			got = append(got, fmt.Sprint(b.NodeID), net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%s: metadata brokers %v, want %s", tc.name, got, tc.want)
		}
		dreq := kmsg.NewPtrDescribeClusterRequest()
		dreq.Version = 0
		desc := tc.rc.roundTrip(dreq).(*kmsg.DescribeClusterResponse)
		got = got[:0]
		for _, b := range desc.Brokers {
			got = append(got, fmt.Sprint(b.NodeID), net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%s: describe cluster brokers %v, want %s", tc.name, got, tc.want)
		}
	}
	// A transaction coordinator is this node, at the client's listener.
	freq := kmsg.NewPtrFindCoordinatorRequest()
	freq.Version, freq.CoordinatorType, freq.CoordinatorKey = 2, 1, "tx"
	f := other.roundTrip(freq).(*kmsg.FindCoordinatorResponse)
	if f.NodeID != self || f.Host != "self-other" || f.Port != 9094 {
		t.Errorf("find coordinator through OTHER: %d %s:%d", f.NodeID, f.Host, f.Port)
	}
}

// TestListenerConfigValidate: listener names are unique, protocols known,
// TLS configured exactly for SSL and SASL_SSL, SASL mechanisms exactly
// when a listener is SASL_*.
func TestListenerConfigValidate(t *testing.T) {
	ok := Listener{Name: "A", Protocol: Plaintext, AdvertisedAddr: "h:1"}
	saslListener := Listener{Name: "S", Protocol: SASLPlaintext, AdvertisedAddr: "h:2"}
	for _, tc := range []struct {
		name       string
		listeners  []Listener
		mechanisms []string
		valid      bool
	}{
		{"sasl listener without mechanisms", []Listener{ok, saslListener}, nil, false},
		{"mechanisms without a sasl listener", []Listener{ok}, []string{sasl.ScramSHA512}, false},
		{"sasl listener with mechanisms", []Listener{ok, saslListener}, []string{sasl.ScramSHA512}, true},
		{"mechanisms on the default listener", nil, []string{sasl.ScramSHA512}, true},
		{"one", []Listener{ok}, nil, true},
		{"twice", []Listener{ok, ok}, nil, false},
		{"no name", []Listener{{Protocol: Plaintext, AdvertisedAddr: "h:1"}}, nil, false},
		{"unknown protocol", []Listener{{Name: "A", Protocol: "TLS", AdvertisedAddr: "h:1"}}, nil, false},
		{"ssl without tls", []Listener{{Name: "A", Protocol: SSL, AdvertisedAddr: "h:1"}}, nil, false},
		{"bad address", []Listener{{Name: "A", Protocol: Plaintext, AdvertisedAddr: "h"}}, nil, false},
	} {
		cfg := DefaultConfig()
		cfg.AdvertisedAddr, cfg.Listeners, cfg.SASL.Mechanisms = "h:1", tc.listeners, tc.mechanisms
		if err := cfg.Validate(); (err == nil) != tc.valid {
			t.Errorf("%s: Validate = %v, want valid %v", tc.name, err, tc.valid)
		}
	}
}

// TestSASLOnlyOnSASLListeners: with SASL mechanisms configured, a
// connection to the PLAINTEXT listener is served without authenticating
// (and its SaslHandshake answers ILLEGAL_SASL_STATE), one to the
// SASL_PLAINTEXT listener is closed when it asks for anything before
// authenticating, and a SCRAM client is served there as its user.
func TestSASLOnlyOnSASLListeners(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{}, func(c *Config) {
		c.Listeners = []Listener{
			{Name: DefaultListenerName, Protocol: Plaintext, AdvertisedAddr: c.AdvertisedAddr},
			{Name: "AUTH", Protocol: SASLPlaintext, AdvertisedAddr: "127.0.0.1:1"},
		}
	})
	addUser(t, ts, "alice", "alice-secret")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.ServeListener("AUTH", ln) }()
	dialAuth := func() *rawConn {
		nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	}

	open := ts.dial(t)
	if meta := open.roundTrip(metadataRequest(12)).(*kmsg.MetadataResponse); len(meta.Brokers) == 0 {
		t.Fatal("PLAINTEXT listener: metadata without brokers")
	}
	if resp := saslHandshake(open, sasl.ScramSHA512); resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("PLAINTEXT listener: SaslHandshake answered %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(resp.ErrorCode))
	}

	refused := dialAuth()
	refused.send(metadataRequest(12))
	if !refused.closed() {
		t.Fatal("SASL_PLAINTEXT listener: a Metadata request before authentication left the connection open")
	}

	authed := dialAuth()
	if resp := plainLogin(authed, "alice", "alice-secret"); resp.ErrorCode != 0 {
		t.Fatalf("SASL_PLAINTEXT listener: PLAIN login: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if meta := authed.roundTrip(metadataRequest(12)).(*kmsg.MetadataResponse); len(meta.Brokers) != 1 || meta.Brokers[0].Port != 1 {
		t.Fatalf("SASL_PLAINTEXT listener: metadata brokers %+v, want this node at the AUTH address", meta.Brokers)
	}
}
