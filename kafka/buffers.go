package kafka

import "sync"

// Fetch responses and produce requests are the broker's bulk traffic: a
// consumer catching up reads its whole throughput into buffers and the
// responses are encoded into more, and every produce request arrives in a
// frame of its size. Fresh buffers would be zeroed and then chased by the
// garbage collector, which then runs every few milliseconds (the live heap
// is small, so its goal is too) and costs as much CPU as the reads
// themselves. So the buffers are kept on a free list of their own: unlike
// a sync.Pool, which each collection empties, it keeps them across
// collections, up to a bound on the bytes it holds.
var buffers = freeList{bytesMax: 128 << 20, bufferMax: 16 << 20}

type freeList struct {
	bytesMax  int // most bytes of capacity held
	bufferMax int // larger buffers are left to the garbage collector

	mu    sync.Mutex
	free  []*[]byte
	bytes int
}

// getBuffer returns an empty buffer, with capacity when one was returned.
func getBuffer() *[]byte { return buffers.get() }

// putBuffer returns b for reuse; nothing may use *b afterwards.
func putBuffer(b *[]byte) { buffers.put(b) }

func (l *freeList) get() *[]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.free)
	if n == 0 {
		return new([]byte)
	}
	b := l.free[n-1] // the most recently used: its memory is likeliest cached
	l.free[n-1] = nil
	l.free = l.free[:n-1]
	l.bytes -= cap(*b)
	return b
}

func (l *freeList) put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c > l.bufferMax {
		return
	}
	*b = (*b)[:0]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bytes+c > l.bytesMax {
		return
	}
	l.free = append(l.free, b)
	l.bytes += c
}
