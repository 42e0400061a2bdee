package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one proxied connection: two pipes, each a reader goroutine
// filling a bounded queue of chunks and a writer goroutine delivering
// them when the direction's fault allows.
type conn struct {
	proxy          *Proxy
	client, server *net.TCPConn
	done           chan struct{} // closed by close
	closeOnce      sync.Once
	ended          sync.WaitGroup // the four goroutines

	finishMu   sync.Mutex
	halfClosed int // directions whose EOF was delivered
}

// chunk is bytes read in one direction, and when they may be delivered.
type chunk struct {
	data []byte
	due  time.Time
	eof  bool // the source closed its side after the chunks before
}

// pipe is one direction of a connection.
type pipe struct {
	c        *conn
	dir      Direction
	src, dst *net.TCPConn

	mu      sync.Mutex
	chunks  []chunk
	held    int
	lastDue time.Time
	changed chan struct{} // closed and replaced when chunks change
}

func (c *conn) start() {
	pipes := []*pipe{
		{c: c, dir: ToTarget, src: c.client, dst: c.server, changed: make(chan struct{})},
		{c: c, dir: ToClient, src: c.server, dst: c.client, changed: make(chan struct{})},
	}
	c.ended.Add(2 * len(pipes))
	for _, pp := range pipes {
		go pp.read()
		go pp.write()
	}
	// The proxy's WaitGroup covers this watcher, which covers the four.
	c.proxy.wg.Add(1)
	go func() {
		defer c.proxy.wg.Done()
		c.ended.Wait()
		c.close(false)
		for _, pp := range pipes {
			pp.drop()
		}
	}()
}

// close ends the connection; reset sends RSTs instead of FINs.
func (c *conn) close(reset bool) {
	c.closeOnce.Do(func() {
		close(c.done)
		if reset {
			resetConn(c.client)
			resetConn(c.server)
		} else {
			c.client.Close()
			c.server.Close()
		}
		c.proxy.unregister(c)
	})
}

// finish records that one direction delivered its EOF; the connection
// closes when both have.
func (c *conn) finish() {
	c.finishMu.Lock()
	c.halfClosed++
	both := c.halfClosed == 2
	c.finishMu.Unlock()
	if both {
		c.close(false)
	}
}

// read moves chunks from the source into the queue, waiting while the
// queue holds HeldBytesMax.
func (pp *pipe) read() {
	defer pp.c.ended.Done()
	heldMax := pp.c.proxy.cfg.HeldBytesMax
	buf := make([]byte, pp.c.proxy.cfg.ChunkBytesMax)
	for {
		if !pp.waitRoom(heldMax) {
			return
		}
		n, err := pp.src.Read(buf)
		if n > 0 && pp.c.proxy.drops(pp.dir) {
			pp.c.close(true) // a lost chunk breaks the stream: cut it
			return
		}
		if n > 0 {
			pp.push(chunk{data: append([]byte(nil), buf[:n]...), due: pp.c.proxy.due(pp.dir, time.Now())})
		}
		if errors.Is(err, io.EOF) {
			pp.push(chunk{eof: true, due: time.Now()})
			return
		}
		if err != nil {
			pp.c.close(true) // the source reset or the connection closed: pass it on
			return
		}
	}
}

// waitRoom waits until the queue holds less than heldMax; false when the
// connection ended.
func (pp *pipe) waitRoom(heldMax int) bool {
	for {
		pp.mu.Lock()
		held, changed := pp.held, pp.changed
		pp.mu.Unlock()
		if held < heldMax {
			return true
		}
		select {
		case <-changed:
		case <-pp.c.done:
			return false
		}
	}
}

// push queues ch, its delivery never before an earlier chunk's.
func (pp *pipe) push(ch chunk) {
	pp.mu.Lock()
	if ch.due.Before(pp.lastDue) {
		ch.due = pp.lastDue
	}
	pp.lastDue = ch.due
	pp.chunks = append(pp.chunks, ch)
	pp.held += len(ch.data)
	pp.notifyLocked()
	pp.mu.Unlock()
	pp.c.proxy.addHeld(len(ch.data))
}

func (pp *pipe) notifyLocked() {
	close(pp.changed)
	pp.changed = make(chan struct{})
}

// head returns the first chunk, and a channel closed at the next change.
func (pp *pipe) head() (chunk, bool, <-chan struct{}) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.chunks) == 0 {
		return chunk{}, false, pp.changed
	}
	return pp.chunks[0], true, pp.changed
}

func (pp *pipe) pop() {
	pp.mu.Lock()
	n := len(pp.chunks[0].data)
	pp.chunks[0] = chunk{}
	pp.chunks = pp.chunks[1:]
	pp.held -= n
	pp.notifyLocked()
	pp.mu.Unlock()
	pp.c.proxy.addHeld(-n)
}

// drop forgets what is still queued once the connection ended.
func (pp *pipe) drop() {
	pp.mu.Lock()
	n := pp.held
	pp.chunks, pp.held = nil, 0
	pp.mu.Unlock()
	if n > 0 {
		pp.c.proxy.addHeld(-n)
	}
}

// write delivers queued chunks when they are due and the direction is not
// blackholed, in order.
func (pp *pipe) write() {
	defer pp.c.ended.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		ch, ok, changed := pp.head()
		fault, faultChanged := pp.c.proxy.fault(pp.dir)
		var wake <-chan time.Time
		switch {
		case !ok:
			faultChanged = nil // nothing to deliver: only new chunks matter
		case fault.Kind == Blackhole || fault.Kind == Reset:
			changed = nil // hold: only a change of fault matters
		case time.Until(ch.due) > 0:
			timer.Reset(time.Until(ch.due))
			wake, changed, faultChanged = timer.C, nil, nil
		default:
			if !pp.deliver(ch) {
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-faultChanged:
		case <-wake:
		case <-pp.c.done:
			return
		}
		timer.Stop()
	}
}

// deliver writes ch (or passes its EOF on); false when the pipe is done.
func (pp *pipe) deliver(ch chunk) bool {
	if ch.eof {
		pp.pop()
		_ = pp.dst.CloseWrite()
		pp.c.finish()
		return false
	}
	if _, err := pp.dst.Write(ch.data); err != nil {
		pp.c.close(true)
		return false
	}
	pp.pop()
	return true
}
