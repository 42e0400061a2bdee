package loadgen

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"time"
)

// payloadWindowBytes is how far apart in the random pool two values may
// start, so consecutive records differ and a batch does not compress to one
// repeated value.
const payloadWindowBytes = 64 << 10

// payload builds record keys and values. Values are slices of one pool of
// random bytes, so they cost no allocation and compression shows its cost
// on incompressible data, never an inflated gain.
type payload struct {
	pool        []byte
	recordBytes int
	keys        int
}

func newPayload(recordBytes, keys int) *payload {
	pool := make([]byte, recordBytes+payloadWindowBytes)
	random := rand.New(rand.NewPCG(3, 4))
	for i := 0; i+8 <= len(pool); i += 8 {
		binary.LittleEndian.PutUint64(pool[i:], random.Uint64())
	}
	return &payload{pool: pool, recordBytes: recordBytes, keys: keys}
}

// key returns record n's key: one of keys distinct keys, used in turn, or
// nil (a null key) when keys is 0.
func (p *payload) key(n int64) []byte {
	if p.keys == 0 {
		return nil
	}
	return strconv.AppendInt([]byte("key-"), n%int64(p.keys), 10)
}

// value returns record n's value. The slice is shared with other records
// and must not be written to.
func (p *payload) value(n int64) []byte {
	// An odd stride visits every start in the window.
	start := int((n * 4099) % payloadWindowBytes)
	return p.pool[start : start+p.recordBytes : start+p.recordBytes]
}

// timestampedValue returns a fresh value for record n whose first 8 bytes
// are sentAt, big-endian, as nanoseconds since the run began.
func (p *payload) timestampedValue(n int64, sentAt time.Duration) []byte {
	value := make([]byte, p.recordBytes)
	copy(value, p.value(n))
	binary.BigEndian.PutUint64(value, uint64(sentAt))
	return value
}

// sentAt reads the send time from a timestamped value; ok is false for a
// value too short to hold one.
func sentAt(value []byte) (time.Duration, bool) {
	if len(value) < timestampBytes {
		return 0, false
	}
	return time.Duration(binary.BigEndian.Uint64(value)), true
}
