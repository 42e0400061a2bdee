package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrPingTimeout: no pong came back within the bound Ping was given: the
// peer may be dead, stuck or behind a black hole.
var ErrPingTimeout = errors.New("transport: no pong within the bound")

// pingBytes is the payload of a Ping and of a Pong: the sequence.
const pingBytes = 8

// AppendPing appends the payload of a Ping or Pong carrying seq to dst.
func AppendPing(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, seq)
}

// ParsePing decodes the payload of a Ping or Pong: exactly its sequence.
func ParsePing(payload []byte) (uint64, error) {
	d := &decoder{b: payload}
	seq := d.u64("ping sequence")
	if err := d.finish("ping"); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	return seq, nil
}

// pingWait is a ping sent and not yet answered; callers of Ping asking
// the same peer meanwhile share it.
type pingWait struct {
	seq  uint64
	done chan struct{} // closed once err is set
	err  error
}

// Ping confirms that node id is alive right now: it sends a Ping on the
// peer's connection, which the peer's reader answers with a Pong without
// reaching any handler, and waits for it at most timeout (on the env's
// clock). A peer that is not connected, or whose connection the kernel
// already holds closed, fails at once with ErrNotConnected, and so does a
// ping whose connection ends before its pong; no pong in time is
// ErrPingTimeout. Concurrent pings of one peer share one round trip.
func (t *TCP) Ping(id uint64, timeout time.Duration) error {
	p := t.peer(id)
	if p == nil {
		return fmt.Errorf("%w: node %d", ErrPeerUnknown, id)
	}
	w, err := p.startPing()
	if err != nil {
		return err
	}
	timer := t.env.Clock.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-w.done:
		return w.err
	case <-timer.C():
		p.endPing(w, nil) // the next Ping sends a new one
		return fmt.Errorf("%w: node %d, %v", ErrPingTimeout, id, timeout)
	case <-p.ctx.Done():
		return fmt.Errorf("ping node %d: %w", id, errStopped)
	}
}

// startPing returns the ping in flight to the peer, or sends one.
func (p *peer) startPing() (*pingWait, error) {
	if !p.isConnected() {
		return nil, fmt.Errorf("%w: node %d", ErrNotConnected, p.id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.pinging; w != nil {
		return w, nil
	}
	if !p.connected {
		return nil, fmt.Errorf("%w: node %d", ErrNotConnected, p.id)
	}
	p.pingSeq++
	w := &pingWait{seq: p.pingSeq, done: make(chan struct{})}
	p.pinging = w
	p.pushFrontLocked(FramePing, AppendPing(nil, w.seq))
	return w, nil
}

// pushFrontLocked queues a Ping or Pong ahead of everything queued, so
// that its round trip does not wait for megabytes of Raft messages. One of
// each type at most waits in the queue: a newer one takes the place of
// one not written yet (its sender waits for the newest only), so a peer
// pinging without end, or a connection that stopped writing, cannot grow
// the queue; their 8 bytes each may exceed PeerQueueBytesMax by that
// much. Callers hold p.mu and checked that the peer is connected.
func (p *peer) pushFrontLocked(typ FrameType, payload []byte) {
	for i := 0; i < len(p.queue) && (p.queue[i].typ == FramePing || p.queue[i].typ == FramePong); i++ {
		if p.queue[i].typ == typ {
			p.queue[i].payload = payload
			return
		}
	}
	it := item{typ: typ, payload: payload, bytes: len(payload)}
	p.queue = append([]item{it}, p.queue...)
	p.queuedBytes += it.bytes
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// endPing ends ping w with err when it is still the one in flight (nil:
// its waiter gave up; a pong answers it).
func (p *peer) endPing(w *pingWait, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pinging != w {
		return
	}
	p.pinging = nil
	w.err = err
	close(w.done)
}

// failPingLocked fails the ping in flight: its connection ended. Callers
// hold p.mu.
func (p *peer) failPingLocked() {
	if w := p.pinging; w != nil {
		p.pinging = nil
		w.err = fmt.Errorf("%w: node %d, its connection closed before the pong", ErrNotConnected, p.id)
		close(w.done)
	}
}

// receivePing answers a Ping with a Pong on the same connection, and
// hands a Pong to the ping it answers (an old one's pong is ignored).
func (p *peer) receivePing(typ FrameType, payload []byte) error {
	seq, err := ParsePing(payload)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case typ == FramePing && p.connected:
		p.pushFrontLocked(FramePong, AppendPing(nil, seq))
	case typ == FramePong && p.pinging != nil && p.pinging.seq == seq:
		w := p.pinging
		p.pinging = nil
		close(w.done)
	}
	return nil
}
