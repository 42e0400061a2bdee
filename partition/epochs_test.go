package partition

import "testing"

// TestEpochHistory checks OffsetForLeaderEpoch answers against Kafka's rules.
func TestEpochHistory(t *testing.T) {
	h := &epochHistory{}
	h.begin(0, 0)
	h.begin(1, 10) // epoch 0 wrote [0,10)
	h.begin(2, 10) // epoch 1 wrote nothing: replaced
	h.begin(3, 25) // epoch 2 wrote [10,25)
	if got := len(h.entries); got != 3 {
		t.Fatalf("entries %v", h.entries)
	}
	cases := []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{-1, -1, -1},
		{0, 0, 10},
		{1, 0, 10}, // epoch 1 never wrote: answered with the largest epoch below it
		{2, 2, 25},
		{3, 3, 40}, // the current epoch ends at the log end
		{9, 3, 40},
	}
	for _, c := range cases {
		e, end := h.endOffsetFor(c.epoch, 40)
		if e != c.wantEpoch || end != c.wantEnd {
			t.Errorf("epoch %d: got (%d, %d), want (%d, %d)", c.epoch, e, end, c.wantEpoch, c.wantEnd)
		}
	}
	h.truncateTo(20) // recovery lost the unsynced tail of epoch 2 and all of epoch 3
	if e, end := h.endOffsetFor(3, 20); e != 2 || end != 20 {
		t.Fatalf("after truncation: (%d, %d)", e, end)
	}
	data, err := h.marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalEpochHistory(data)
	if err != nil || back.current() != 2 {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if _, err := unmarshalEpochHistory([]byte(`{"version":1,"entries":[{"epoch":2,"start_offset":5},{"epoch":1,"start_offset":9}]}`)); err == nil {
		t.Fatal("accepted epochs out of order")
	}
}
