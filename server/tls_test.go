package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/testcerts"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/tlsconf"
)

// tlsWaitMax bounds every wait of these tests.
const tlsWaitMax = 10 * time.Second

// pki is a test's certificates: a CA for the servers, one for the clients.
type pki struct {
	dir      string
	ca       *testcerts.CA // signs the node's certificate
	clientCA *testcerts.CA // signs client certificates
	node     *testcerts.Leaf
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	p := &pki{dir: dir, ca: testcerts.NewCA(t, dir, "servers"), clientCA: testcerts.NewCA(t, dir, "clients")}
	p.node = p.ca.Issue(t, dir, "node", testcerts.Options{Server: true, Serial: 1})
	return p
}

// clientTLS trusts the server CA and shows leaf when given.
func (p *pki) clientTLS(leaf *testcerts.Leaf) *tls.Config {
	cfg := &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{leaf.TLS}
	}
	return cfg
}

// logBuffer keeps a server's log lines for a test to look for one.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// waitLine waits for a line holding every one of parts.
func (b *logBuffer) waitLine(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(tlsWaitMax)
	for {
		b.mu.Lock()
		text := b.buf.String()
		b.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			if containsEvery(line, parts) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, text)
		}
		time.Sleep(10 * time.Millisecond) // polling the log of other goroutines
	}
}

func containsEvery(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// startTLSServer starts a single node with the pki's certificate, edit
// setting its listeners and TLS options; its debug log goes to the buffer.
func startTLSServer(t *testing.T, p *pki, edit func(*Config)) (*Server, *logBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS = tlsconf.Files{CertFile: p.node.CertFile, KeyFile: p.node.KeyFile}
	edit(&cfg)
	logs := &logBuffer{}
	s, err := Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

func sslListener(name string) Listener {
	return Listener{Name: name, Protocol: kafka.SSL, Addr: "127.0.0.1:0"}
}

// produceConsume produces one record to topic through a client of
// brokers with tlsCfg and reads it back.
func produceConsume(t *testing.T, tlsCfg *tls.Config, topic string, brokers ...string) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequiredAcks(kgo.AllISRAcks())}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*tlsWaitMax)
	defer cancel()
	want := "over tls to " + topic
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		for _, r := range fs.Records() {
			if string(r.Value) == want {
				return
			}
		}
	}
}

// apiVersions sends an ApiVersions request on conn and reads the answer:
// proof that the connection is served.
func apiVersions(conn net.Conn, correlation int32) error {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	var frame []byte
	frame = binary.BigEndian.AppendUint32(frame, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.ApiVersions.Int16()))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, uint32(correlation))
	frame = binary.BigEndian.AppendUint16(frame, 0xffff) // no client id
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if err := conn.SetDeadline(time.Now().Add(tlsWaitMax)); err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != correlation {
		return fmt.Errorf("correlation id %d, want %d", got, correlation)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	if err := resp.ReadFrom(body[4:]); err != nil {
		return err
	}
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		return fmt.Errorf("api versions error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	return nil
}

// serialOf is the serial of the certificate conn's server showed.
func serialOf(conn *tls.Conn) int64 {
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestKafkaOverTLS: franz-go produces and consumes over an SSL listener,
// checking the server's certificate against its CA.
func TestKafkaOverTLS(t *testing.T) {
	p := newPKI(t)
	s, _ := startTLSServer(t, p, func(c *Config) { c.Listeners = []Listener{sslListener("SSL")} })
	produceConsume(t, p.clientTLS(nil), "secured", s.KafkaAddr())

	// A client speaking plaintext to the SSL listener is not served.
	conn, err := net.Dial("tcp", s.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := apiVersions(conn, 1); err == nil {
		t.Fatal("a plaintext request was answered on an SSL listener")
	}
}

// TestMutualTLSPrincipal: with client certificates required, a client's
// principal is its certificate's subject through the mapping rules (the
// connection logs it), a client without a certificate is refused, and so
// is one whose certificate no rule maps.
func TestMutualTLSPrincipal(t *testing.T) {
	p := newPKI(t)
	s, logs := startTLSServer(t, p, func(c *Config) {
		c.Listeners = []Listener{sslListener("SSL")}
		c.TLS.ClientCAFile = p.clientCA.CertFile
		c.PrincipalMappingRules = `RULE:^CN=(.*?),OU=Engineering,.*$/$1/L, RULE:^CN=([^,]*)$/svc-$1/`
	})
	alice := p.clientCA.Issue(t, p.dir, "alice", testcerts.Options{Subject: pkix.Name{
		CommonName: "Alice", OrganizationalUnit: []string{"Engineering"}, Organization: []string{"Example"}}})
	produceConsume(t, p.clientTLS(alice), "mtls", s.KafkaAddr())
	logs.waitLine(t, "tls client authenticated", "listener=SSL", "principal=User:alice")

	// The second rule, on a raw connection this time.
	svc := p.clientCA.Issue(t, p.dir, "svc", testcerts.Options{Subject: pkix.Name{CommonName: "billing"}})
	conn, err := tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(svc))
	if err != nil {
		t.Fatal(err)
	}
	if err := apiVersions(conn, 2); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	logs.waitLine(t, "tls client authenticated", "principal=User:svc-billing")

	// No certificate: the server ends the handshake (seen by a TLS 1.3
	// client at its first read).
	conn, err = tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(nil))
	if err == nil {
		err = apiVersions(conn, 3)
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	logs.waitLine(t, "closing connection", "tls handshake", "certificate")

	// A certificate no rule maps: refused after the handshake.
	nobody := p.clientCA.Issue(t, p.dir, "nobody", testcerts.Options{Subject: pkix.Name{CommonName: "x", Organization: []string{"Elsewhere"}}})
	conn, err = tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(nobody))
	if err == nil {
		err = apiVersions(conn, 4)
		conn.Close()
	}
	if err == nil {
		t.Fatal("a certificate no rule maps was served")
	}
	logs.waitLine(t, "closing connection", "no principal mapping rule matches")

	// A certificate another CA signed is refused too.
	stranger := p.ca.Issue(t, p.dir, "stranger", testcerts.Options{Subject: pkix.Name{CommonName: "Eve"}})
	conn, err = tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(stranger))
	if err == nil {
		err = apiVersions(conn, 5)
		conn.Close()
	}
	if err == nil {
		t.Fatal("a certificate of another CA was served")
	}
}

// TestTLSBelow12Refused: a client offering TLS 1.0 or 1.1 only fails its
// handshake; TLS 1.2 is served.
func TestTLSBelow12Refused(t *testing.T) {
	p := newPKI(t)
	s, _ := startTLSServer(t, p, func(c *Config) { c.Listeners = []Listener{sslListener("SSL")} })
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := p.clientTLS(nil)
		cfg.MinVersion, cfg.MaxVersion = v, v
		conn, err := tls.Dial("tcp", s.KafkaAddr(), cfg)
		if err == nil {
			conn.Close()
			t.Fatalf("TLS version %x accepted", v)
		}
	}
	cfg := p.clientTLS(nil)
	cfg.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", s.KafkaAddr(), cfg)
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	defer conn.Close()
	if err := apiVersions(conn, 1); err != nil {
		t.Fatal(err)
	}
}

// TestCertificateRotation: new certificate files are served to new
// connections without a restart, while a connection made before keeps
// working with the certificate it shook hands with.
func TestCertificateRotation(t *testing.T) {
	p := newPKI(t)
	s, logs := startTLSServer(t, p, func(c *Config) { c.Listeners = []Listener{sslListener("SSL")} })
	old, err := tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := apiVersions(old, 1); err != nil || serialOf(old) != 1 {
		t.Fatalf("before the rotation: %v, serial %d", err, serialOf(old))
	}
	p.ca.Issue(t, p.dir, "node", testcerts.Options{Server: true, Serial: 2})
	deadline := time.Now().Add(tlsWaitMax)
	for {
		conn, err := tls.Dial("tcp", s.KafkaAddr(), p.clientTLS(nil))
		if err != nil {
			t.Fatal(err)
		}
		serial := serialOf(conn)
		conn.Close()
		if serial == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still see serial %d", serial)
		}
		time.Sleep(50 * time.Millisecond) // the server looks at the files at most once a second
	}
	logs.waitLine(t, "certificate reloaded")
	if err := apiVersions(old, 2); err != nil {
		t.Fatalf("the connection made before the rotation: %v", err)
	}
	if serialOf(old) != 1 {
		t.Fatalf("old connection's serial %d", serialOf(old))
	}
}

// metadataBrokers asks for Metadata through a client of addr and returns
// the brokers' addresses as given.
func metadataBrokers(t *testing.T, addr string, tlsCfg *tls.Config) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addr)}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tlsWaitMax)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range resp.Brokers {
		out = append(out, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
	}
	return out
}

// TestTwoListeners: a PLAINTEXT and an SSL listener at once; each client
// is given the address of the listener it connected to (the SSL one as
// advertised), and franz-go works through both.
func TestTwoListeners(t *testing.T) {
	p := newPKI(t)
	s, _ := startTLSServer(t, p, func(c *Config) {
		c.Listeners = []Listener{{Name: "LOCAL", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"}, sslListener("SECURE")}
	})
	local, secure := s.ListenerAddr("LOCAL"), s.ListenerAddr("SECURE")
	if got := metadataBrokers(t, local, nil); len(got) != 1 || got[0] != local {
		t.Fatalf("plaintext client given %v, want [%s]", got, local)
	}
	if got := metadataBrokers(t, secure, p.clientTLS(nil)); len(got) != 1 || got[0] != secure {
		t.Fatalf("TLS client given %v, want [%s]", got, secure)
	}
	produceConsume(t, nil, "two", local)
	produceConsume(t, p.clientTLS(nil), "two", secure)
}

// TestAdvertisedListener: a listener's advertised address is what its
// clients are given.
func TestAdvertisedListener(t *testing.T) {
	p := newPKI(t)
	s, _ := startTLSServer(t, p, func(c *Config) {
		c.Listeners = []Listener{{Name: "LOCAL", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"},
			{Name: "SECURE", Protocol: kafka.SSL, Addr: "127.0.0.1:0", AdvertisedAddr: "kafka.example.com:9093"}}
	})
	if got := metadataBrokers(t, s.ListenerAddr("SECURE"), p.clientTLS(nil)); len(got) != 1 || got[0] != "kafka.example.com:9093" {
		t.Fatalf("TLS client given %v", got)
	}
}

// TestHTTPOverTLS: /healthz and the event-store API over HTTPS, with a
// client certificate's principal in each request's context.
func TestHTTPOverTLS(t *testing.T) {
	p := newPKI(t)
	s, _ := startTLSServer(t, p, func(c *Config) {
		c.HTTPTLS = true
		c.TLS.ClientCAFile, c.TLS.ClientAuth = p.clientCA.CertFile, tlsconf.ClientAuthRequested
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(nil), ForceAttemptHTTP2: true}, Timeout: tlsWaitMax}
	resp, err := hc.Get("https://" + s.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d %q", resp.StatusCode, body)
	}
	// Plain HTTP is not served there.
	if resp, err := http.Get("http://" + s.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}

	alice := p.clientCA.Issue(t, p.dir, "alice", testcerts.Options{Subject: pkix.Name{CommonName: "alice"}})
	c, err := client.New("https://"+s.HTTPAddr(), client.WithTLS(p.clientTLS(alice)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tlsWaitMax)
	defer cancel()
	if _, err := c.Append(ctx, "orders", "o-1", client.NoStream, client.EventData{Type: "Placed", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	page, err := c.ReadStream(ctx, "orders", "o-1")
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("read over TLS: %v, %+v", err, page)
	}
}

// TestHTTPPrincipal: the HTTP handler's requests carry the principal the
// rules name for the client's certificate; without one, Anonymous.
func TestHTTPPrincipal(t *testing.T) {
	p := newPKI(t)
	rules, err := tlsconf.ParseRules(`RULE:^CN=(.*?),O=.*$/$1/U,DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{rules: rules}
	srv := httptest.NewUnstartedServer(s.withPrincipal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, auth.FromContext(r.Context()).String())
	})))
	node, err := tlsconf.Load(tlsconf.Files{CertFile: p.node.CertFile, KeyFile: p.node.KeyFile, ClientCAFile: p.clientCA.CertFile, ClientAuth: tlsconf.ClientAuthRequested}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = node.Server()
	srv.TLS.Certificates = []tls.Certificate{p.node.TLS} // StartTLS would put its own there
	srv.StartTLS()
	defer srv.Close()
	bob := p.clientCA.Issue(t, p.dir, "bob", testcerts.Options{Subject: pkix.Name{CommonName: "bob", Organization: []string{"Example"}}})
	for _, tc := range []struct {
		leaf *testcerts.Leaf
		want string
	}{{bob, "User:BOB"}, {nil, "User:ANONYMOUS"}} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(tc.leaf)}, Timeout: tlsWaitMax}
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("principal %q, want %q", body, tc.want)
		}
	}
}

// TestClusterOverTLS: three nodes talk to each other over mutual TLS and
// serve clients on a PLAINTEXT and an SSL listener each; every node
// registers both, and a client of either listener is given every broker's
// address for it. franz-go produces with acks=all (replicated between the
// nodes over TLS) and consumes through the SSL listeners.
func TestClusterOverTLS(t *testing.T) {
	p := newPKI(t)
	// The nodes' certificate is issued by the CA they check each other
	// against: the client CA file here.
	peerCA := p.clientCA
	peerCert := peerCA.Issue(t, p.dir, "peer", testcerts.Options{Server: true})
	tc := startClusterWith(t, &testCluster{t: t, config: tlsNodeConfig(peerCA, peerCert)})
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated("replicated", 3, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]bool{"LOCAL": {}, "SECURE": {}}
	for _, s := range tc.servers {
		for name := range want {
			want[name][s.ListenerAddr(name)] = true
		}
	}
	// Every node registered both listeners, and each listener's clients
	// are given the three brokers' addresses for it.
	deadline := time.Now().Add(3 * tlsWaitMax)
	clientCfg := &tls.Config{RootCAs: peerCA.Pool(), MinVersion: tls.VersionTLS12}
	for id, s := range tc.servers {
		for {
			local := metadataBrokers(t, s.ListenerAddr("LOCAL"), nil)
			secure := metadataBrokers(t, s.ListenerAddr("SECURE"), clientCfg)
			if allIn(local, want["LOCAL"]) && allIn(secure, want["SECURE"]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d gives LOCAL clients %v and SECURE ones %v; want %v", id, local, secure, want)
			}
			time.Sleep(20 * time.Millisecond) // registrations apply on every node
		}
	}
	var seeds []string
	for _, s := range tc.servers {
		seeds = append(seeds, s.ListenerAddr("SECURE"))
	}
	produceConsume(t, clientCfg, "replicated", seeds...)
	for id, s := range tc.servers {
		if m := s.Cluster().Stats().Transport; m.MessagesReceived == 0 {
			t.Fatalf("node %d received no Raft message: %+v", id, m)
		}
	}
}

// tlsNodeConfig gives a node a PLAINTEXT and an SSL listener and mutual
// TLS with the other nodes, with a certificate of ca.
func tlsNodeConfig(ca *testcerts.CA, cert *testcerts.Leaf) func(int32, *Config) {
	return func(_ int32, c *Config) {
		c.Listeners = []Listener{{Name: "LOCAL", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"}, sslListener("SECURE")}
		c.TLS = tlsconf.Files{CertFile: cert.CertFile, KeyFile: cert.KeyFile, ClientCAFile: ca.CertFile, ClientAuth: tlsconf.ClientAuthNone}
		c.RaftTLS = true
	}
}

// TestClusterJoinOverTLS: a node joins a cluster whose nodes talk over
// mutual TLS (its join connection over TLS too) and becomes ACTIVE.
func TestClusterJoinOverTLS(t *testing.T) {
	p := newPKI(t)
	cert := p.clientCA.Issue(t, p.dir, "peer", testcerts.Options{Server: true})
	tc := startClusterWith(t, &testCluster{t: t, config: tlsNodeConfig(p.clientCA, cert)})
	tc.startJoined(4)
	waitUntil(t, "node 4 ACTIVE", func() bool {
		return tc.servers[4].Cluster().NodeState(4) == "ACTIVE" && tc.servers[1].Cluster().NodeState(4) == "ACTIVE"
	})
	if addr := tc.servers[4].ListenerAddr("SECURE"); addr == "" {
		t.Fatal("node 4 has no SECURE listener")
	}
}

// allIn reports whether addrs are exactly the members of set.
func allIn(addrs []string, set map[string]bool) bool {
	if len(addrs) != len(set) {
		return false
	}
	for _, a := range addrs {
		if !set[a] {
			return false
		}
	}
	return true
}
