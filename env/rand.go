package env

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
)

// Rand is a node's source of randomness: ids (cluster, topics, member id
// prefixes) come from it. It is a ChaCha8 stream, so seeded from the
// operating system (NewRealRand) its output is as unpredictable as
// crypto/rand's, and seeded with a number (NewSeededRand) it is the same on
// every run. Safe for concurrent use: requests on many goroutines draw from
// one node's Rand.
type Rand struct {
	mu  sync.Mutex
	src *rand.ChaCha8
}

// NewRealRand seeds a Rand from the operating system.
func NewRealRand() *Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return &Rand{src: rand.NewChaCha8(seed)}
}

// NewSeededRand returns a Rand whose output depends only on seed.
func NewSeededRand(seed uint64) *Rand {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], seed)
	return &Rand{src: rand.NewChaCha8(key)}
}

// Read fills p with random bytes. It never fails; the error is there so
// that a Rand is an io.Reader.
func (r *Rand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.src.Read(p)
}
