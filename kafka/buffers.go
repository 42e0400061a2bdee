package kafka

import "sync"

// Fetch responses are the broker's bulk traffic: a consumer catching up
// reads its whole throughput into buffers, and the responses are encoded
// into more. Fresh buffers would be zeroed and then chased by the garbage
// collector, which costs as much CPU as the reads themselves, so both come
// from this pool and go back once the response is on its way.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// bufferPooledMax bounds the buffers kept: a rare huge response is left to
// the garbage collector rather than held.
const bufferPooledMax = 64 << 20

// getBuffer returns an empty buffer, with capacity when one was returned.
func getBuffer() *[]byte {
	b := buffers.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// putBuffer returns b to the pool; nothing may use *b afterwards.
func putBuffer(b *[]byte) {
	if cap(*b) > bufferPooledMax {
		return
	}
	*b = (*b)[:0]
	buffers.Put(b)
}
