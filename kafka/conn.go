package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/auth"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	logger *slog.Logger
	ctx    context.Context // done when the connection closes; deferred replies stop waiting
	cancel context.CancelFunc

	closeOnce sync.Once

	// clientID is the client id of the request being handled; set by the
	// handle loop before each handler's synchronous part runs.
	clientID string

	// principal is who the connection acts as: Anonymous until something
	// authenticates it (a client certificate, at the TLS handshake).
	principal auth.Principal
	// sasl is the connection's SASL exchange and session (sasl.go).
	sasl session

	// listener is the listener the client connected to: its name picks the
	// addresses the client is given, its protocol what the client must do
	// before it is served.
	listener *listener

	// mutedUntil (Unix nanoseconds of the server's clock) is when a client
	// throttled by a quota may send again: the read loop holds requests
	// until then (quota.go).
	mutedUntil atomic.Int64
}

// pending is a reply in the connection's ordered queue.
type pending struct {
	header requestHeader
	reply  reply
	read   time.Time // when the request's frame was read
	// quota is what the request consumed of its client's quotas;
	// follower marks a follower's fetch, which no quota limits.
	quota    quotaUse
	follower bool
}

func newConn(s *Server, nc net.Conn, l *listener) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, nc: nc, ctx: ctx, cancel: cancel, principal: auth.Anonymous, listener: l,
		logger: s.logger.With("remote", nc.RemoteAddr().String())}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
	})
}

// pooledFrameMin is the smallest request frame read into a pooled buffer.
const pooledFrameMin = 64 << 10

// decoded is a request the read loop parsed, or why it could not.
type decoded struct {
	header requestHeader
	req    kmsg.Request
	err    error
	read   time.Time
	// frame, when set, is the pooled buffer req was parsed from, to be
	// returned once the handler's synchronous part is done with it.
	frame *[]byte
	size  int // the frame's bytes
}

// serve runs three stages, so that one connection's work spreads over
// cores while its requests are still handled and answered in order: the
// read loop reads and parses frames, the handle loop (here) runs each
// handler's synchronous part (a produce's append), and the write loop
// waits for deferred replies and writes responses.
func (c *conn) serve() {
	connectionsOpen.Inc()
	defer connectionsOpen.Dec()
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := c.handshake(tc); err != nil {
			if c.ctx.Err() == nil {
				c.logger.Warn("closing connection", "listener", c.listener.Name, "err", err)
			}
			c.close()
			return
		}
	}
	r := bufio.NewReaderSize(c.nc, 64<<10)
	if c.requiresSASL() {
		if err := c.authenticate(r); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger.Warn("closing connection", "listener", c.listener.Name, "err", err)
			}
			c.close()
			return
		}
	}
	// One parsed request waits while the previous one is handled: enough
	// to overlap reading with handling, and it bounds how much the reader
	// holds ahead of the handler.
	requests := make(chan decoded, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(requests)
		c.readLoop(r, requests)
	}()
	queue := make(chan *pending, c.s.cfg.InflightRequestsMax)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(queue)
	}()
	c.handleLoop(requests, queue)
	// The client is gone or misbehaved: stop deferred replies waiting for
	// it and the reader reading for it.
	c.cancel()
	close(queue)
	<-writerDone
	c.close()
	<-readerDone
}

// readLoop reads and parses frames until the connection fails or closes.
func (c *conn) readLoop(r *bufio.Reader, requests chan<- decoded) {
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return
		}
		// Large frames (produce requests' records) are read into pooled
		// buffers; small ones are not worth it.
		var buf *[]byte
		frame, err := readFrame(r, c.s.cfg.RequestBytesMax, func(size int) []byte {
			if size < pooledFrameMin {
				return nil
			}
			buf = getBuffer()
			return *buf
		})
		if err != nil {
			if buf != nil {
				putBuffer(buf)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
				c.logger.Warn("closing connection", "err", err)
			}
			return
		}
		h, req, err := decodeRequest(frame)
		d := decoded{header: h, req: req, err: err, read: time.Now(), size: len(frame)}
		c.s.requests.Add(1)
		// Parsed requests refer to their frame's bytes. A produce is done
		// with them when its handler returns (the records are written by
		// then); others may keep them (group members' metadata), so their
		// frames are left to the garbage collector.
		if _, ok := req.(*kmsg.ProduceRequest); ok && buf != nil {
			*buf = frame
			d.frame = buf
		}
		if !c.waitUnmuted() {
			return
		}
		select {
		case requests <- d:
		case <-c.ctx.Done():
			return
		}
		if err != nil && !errors.Is(err, errUnsupportedApiVersions) {
			return
		}
	}
}

// handleLoop runs each request's handler in arrival order and queues its
// reply for the write loop. It returns when the reader stops, after a bad
// request, or after a reply that closes the connection.
func (c *conn) handleLoop(requests <-chan decoded, queue chan<- *pending) {
	for d := range requests {
		p, err := c.handle(d)
		if d.frame != nil {
			putBuffer(d.frame)
		}
		if err != nil {
			requestErrors.Inc()
			c.logger.Warn("closing connection after bad request", "err", err)
			return
		}
		select {
		case queue <- p:
		case <-c.ctx.Done():
			// Never written: let go of what it holds (a fetch's
			// segment files).
			if p.reply.release != nil {
				p.reply.release()
			}
			return
		}
		if p.reply.closeAfter {
			return
		}
	}
}

// handle runs the handler's synchronous part of a parsed request.
func (c *conn) handle(d decoded) (*pending, error) {
	h, req, err := d.header, d.req, d.err
	if errors.Is(err, errUnsupportedApiVersions) {
		return &pending{header: h, reply: reply{resp: unsupportedApiVersions()}, read: d.read}, nil
	}
	if err != nil {
		return nil, err
	}
	requestsTotal.WithLabelValues(kmsg.NameForKey(h.key)).Inc()
	if err := c.checkSession(h.key); err != nil {
		return nil, err
	}
	c.clientID = h.clientID
	started := c.s.clock.Now()
	p := &pending{header: h, reply: apis[h.key].handle(c.s, c, req), read: d.read}
	// After the handler: it may be what authenticated the connection.
	p.quota = quotaUse{user: c.principal.Name, clientID: h.clientID, requestBytes: d.size,
		handling: c.s.clock.Now().Sub(started)}
	if f, ok := req.(*kmsg.FetchRequest); ok {
		p.follower = f.ReplicaID >= 0
	}
	return p, nil
}

// errUnsupportedApiVersions is the one unsupported version answered rather
// than closed on, so a newer client can negotiate down.
var errUnsupportedApiVersions = errors.New("unsupported ApiVersions version")

// decodeRequest parses a whole frame (without its size prefix) into a request
// of a registered API and version. It is pure, so it is fuzzed directly.
func decodeRequest(frame []byte) (requestHeader, kmsg.Request, error) {
	h, body, err := parseRequestHeader(frame)
	if err != nil {
		return h, nil, err
	}
	a, known := apis[h.key]
	if !known {
		return h, nil, fmt.Errorf("unknown API key %d (correlation id %d, client %q)", h.key, h.correlationID, h.clientID)
	}
	if h.version < a.minVersion || h.version > a.maxVersion {
		if h.key == kmsg.ApiVersions.Int16() {
			return h, nil, errUnsupportedApiVersions
		}
		return h, nil, fmt.Errorf("%s version %d unsupported (serving %d-%d, client %q)",
			kmsg.NameForKey(h.key), h.version, a.minVersion, a.maxVersion, h.clientID)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		if body, err = skipTags(body); err != nil {
			return h, nil, fmt.Errorf("%s v%d request header: %w", kmsg.NameForKey(h.key), h.version, err)
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return h, nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

func (c *conn) writeLoop(queue <-chan *pending) {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for p := range queue {
		resp := p.reply.resp
		if p.reply.wait != nil {
			resp = p.reply.wait()
		}
		if resp == nil {
			if p.reply.release != nil {
				p.reply.release()
			}
			if throttle := c.throttle(p, 0); throttle > 0 {
				c.mute(throttle)
			}
			if p.reply.closeAfter {
				c.close()
			}
			continue
		}
		out := getBuffer()
		*out = appendResponse(*out, p.header, resp)
		files := p.reply.files
		if files != nil && len(files.partitions) == 0 {
			files = nil
		}
		throttle := c.throttle(p, len(*out)+files.bytes())
		if t, ok := resp.(kmsg.SetThrottleResponse); ok && throttle > 0 {
			t.SetThrottle(int32(throttle.Milliseconds()))
			*out = appendResponse((*out)[:0], p.header, resp)
		}
		if p.reply.release != nil && files == nil {
			p.reply.release()
		}
		err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		if err == nil && files != nil {
			err = writeWithFiles(w, c.zeroCopy(), *out, files, resp.IsFlexible())
		} else if err == nil {
			_, err = w.Write(*out)
		}
		if err == nil && len(queue) == 0 {
			err = w.Flush()
		}
		if err != nil {
			c.close()
		}
		if p.reply.release != nil && files != nil {
			p.reply.release()
		}
		putBuffer(out)
		if throttle > 0 {
			c.mute(throttle)
		}
		requestSeconds.WithLabelValues(kmsg.NameForKey(p.header.key)).Observe(time.Since(p.read).Seconds())
	}
	_ = w.Flush()
}

// readFrame reads one size-prefixed frame, into the spare capacity of the
// buffer bufferFor returns for its size when that is not nil. The buffer
// grows only as bytes arrive, so a client claiming a huge size costs
// nothing until it sends.
func readFrame(r io.Reader, maxBytes int32, bufferFor func(size int) []byte) ([]byte, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if size < 8 || size > maxBytes {
		return nil, fmt.Errorf("request frame of %d bytes: must be between 8 and %d", size, maxBytes)
	}
	const step = 1 << 20
	var buf []byte
	if bufferFor != nil {
		buf = bufferFor(int(size))[:0]
	}
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(int(size), step))
	}
	for len(buf) < int(size) {
		want := min(int(size)-len(buf), step)
		if cap(buf)-len(buf) < want {
			grown := make([]byte, len(buf), min(int(size), max(2*cap(buf), len(buf)+want)))
			copy(grown, buf)
			buf = grown
		}
		n, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read request frame: %w", err)
		}
	}
	return buf, nil
}

type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
}

// parseRequestHeader reads the fields common to every request header
// version; flexible requests' tagged fields follow and are skipped by decode.
func parseRequestHeader(frame []byte) (requestHeader, []byte, error) {
	var h requestHeader
	if len(frame) < 10 {
		return h, nil, fmt.Errorf("request header: %d bytes", len(frame))
	}
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	n := int16(binary.BigEndian.Uint16(frame[8:]))
	rest := frame[10:]
	if n > 0 {
		if int(n) > len(rest) {
			return h, nil, fmt.Errorf("request header: client id of %d bytes in %d", n, len(rest))
		}
		h.clientID = string(rest[:n])
		rest = rest[n:]
	} else if n < -1 {
		return h, nil, fmt.Errorf("request header: client id length %d", n)
	}
	return h, rest, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errors.New("bad tagged field count")
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errors.New("bad tagged field size")
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// appendResponse frames resp: size, correlation id, the flexible header's
// empty tag section (never for ApiVersions, whose response header is always
// v0 so clients can parse it before they know the version), then the body.
func appendResponse(dst []byte, h requestHeader, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.correlationID))
	if resp.IsFlexible() && h.key != kmsg.ApiVersions.Int16() {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
