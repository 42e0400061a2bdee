package env

import (
	"bytes"
	"testing"
)

// TestSeededRandRepeats: one seed gives one stream of bytes, another seed
// another — what makes a simulated run repeatable from its seed.
func TestSeededRandRepeats(t *testing.T) {
	read := func(r *Rand) []byte {
		p := make([]byte, 32)
		if n, err := r.Read(p); n != len(p) || err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		return p
	}
	a, b, c := read(NewSeededRand(7)), read(NewSeededRand(7)), read(NewSeededRand(8))
	if !bytes.Equal(a, b) {
		t.Fatalf("seed 7 gave %x then %x", a, b)
	}
	if bytes.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 both gave %x", a)
	}
	if bytes.Equal(read(NewRealRand()), read(NewRealRand())) {
		t.Fatal("two real sources gave the same bytes")
	}
}

// TestCheckAndComplete: Check names the first unset field; Complete fills
// every unset one.
func TestCheckAndComplete(t *testing.T) {
	e := Env{Clock: NewManualClock(Real().Clock.Now())}
	if err := e.Check(); err == nil || err.Error() != "env: no rand" {
		t.Fatalf("check of an env with only a clock: %v", err)
	}
	done := e.Complete()
	if err := done.Check(); err != nil {
		t.Fatal(err)
	}
	if done.Clock != e.Clock {
		t.Fatal("Complete replaced a set clock")
	}
}
