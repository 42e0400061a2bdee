package kafka

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// testServer is a Kafka server over an in-memory filesystem on 127.0.0.1.
type testServer struct {
	*Server
	addr    string
	cluster *cluster.Cluster
	fs      vfs.FS
}

// startServer starts a server; edit adjusts the config before it starts.
func startServer(t testing.TB, edit ...func(*Config)) *testServer {
	t.Helper()
	return startServerFS(t, vfs.NewMem(), edit...)
}

// startServerFS is startServer over a given filesystem, for fault injection.
func startServerFS(t testing.TB, fsys vfs.FS, edit ...func(*Config)) *testServer {
	t.Helper()
	return startServerWith(t, serverSetup{fs: fsys}, edit...)
}

// startServerView is startServer with the handlers reading the cluster
// through the view view returns, so a test shows what another node of a
// cluster would see.
func startServerView(t testing.TB, view func(*cluster.Cluster) clusterView, edit ...func(*Config)) *testServer {
	t.Helper()
	return startServerWith(t, serverSetup{view: view}, edit...)
}

// serverSetup is what a test server is built with besides its Config.
type serverSetup struct {
	fs   vfs.FS // nil: in memory
	dir  string // the data directory; "": /data
	node int32  // the cluster's node id
	// oneVoter makes the node a cluster of its own (peers naming itself):
	// its partitions are replicated Raft groups with one voter.
	oneVoter bool
	view     func(*cluster.Cluster) clusterView // nil: the cluster itself
	clock    env.Clock                          // nil: the real clock
	logger   *slog.Logger                       // nil: discarded
}

func startServerWith(t testing.TB, setup serverSetup, edit ...func(*Config)) *testServer {
	t.Helper()
	fsys, view := setup.fs, setup.view
	if fsys == nil {
		fsys = vfs.NewMem()
	}
	logger := setup.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := setup.dir
	if dir == "" {
		dir = "/data"
	}
	ccfg := cluster.DefaultConfig(dir)
	ccfg.NodeID = setup.node
	if setup.oneVoter {
		ccfg.NodeID, ccfg.Peers, ccfg.KafkaAddr = 1, map[int32]string{1: freeLoopbackAddr(t)}, ln.Addr().String()
	}
	e := env.Real()
	e.FS, e.Logger = fsys, logger
	if setup.clock != nil {
		e.Clock = setup.clock
	}
	cl, err := cluster.Open(e, ccfg)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdvertisedAddr = ln.Addr().String()
	for _, e := range edit {
		e(&cfg)
	}
	srv, err := NewServer(cfg, cl, logger)
	if err != nil {
		t.Fatal(err)
	}
	if view != nil {
		srv.view = view(cl)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = cl.Close()
	})
	return &testServer{Server: srv, addr: ln.Addr().String(), cluster: cl, fs: fsys}
}

// freeLoopbackAddr returns a loopback address nothing listens on now, for
// a one-voter cluster's Raft listener.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// client returns a franz-go client for the server, closed at cleanup.
func (ts *testServer) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(ts.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// rawConn is a bare protocol connection that sends requests at exactly the
// version set on them, to test each version the server registers.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

func (ts *testServer) dial(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// send writes req with a request header for its version.
func (rc *rawConn) send(req kmsg.Request) int32 {
	rc.t.Helper()
	rc.corr++
	buf := []byte{0, 0, 0, 0}
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(rc.corr))
	buf = binary.BigEndian.AppendUint16(buf, 4)
	buf = append(buf, "test"...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	rc.write(buf)
	return rc.corr
}

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	_ = rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// receive reads the response to req and checks its correlation id.
func (rc *rawConn) receive(req kmsg.Request, corr int32) kmsg.Response {
	rc.t.Helper()
	_ = rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		rc.t.Fatalf("read response size: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.r, body); err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		rc.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		body = body[1:] // empty tag section of the flexible response header
	}
	if err := resp.ReadFrom(body); err != nil {
		rc.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// roundTrip sends req and returns its response.
func (rc *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	rc.t.Helper()
	return rc.receive(req, rc.send(req))
}

// closed reports whether the server closed the connection within a second.
func (rc *rawConn) closed() bool {
	_ = rc.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, err := rc.r.ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
