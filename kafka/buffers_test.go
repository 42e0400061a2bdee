package kafka

import "testing"

func TestFreeList(t *testing.T) {
	l := freeList{bytesMax: 3 << 10, bufferMax: 2 << 10}
	if b := l.get(); b == nil || len(*b) != 0 {
		t.Fatalf("empty list gave %v", b)
	}
	small, big, huge := make([]byte, 5, 1<<10), make([]byte, 0, 2<<10), make([]byte, 0, 4<<10)
	l.put(&small)
	l.put(&big)
	l.put(&huge) // above bufferMax: dropped
	if l.bytes != 3<<10 || len(l.free) != 2 {
		t.Fatalf("list holds %d bytes in %d buffers, want 3 KiB in 2", l.bytes, len(l.free))
	}
	extra := make([]byte, 0, 1<<10)
	l.put(&extra) // would pass bytesMax: dropped
	if got := l.get(); cap(*got) != 2<<10 {
		t.Fatalf("got a buffer of %d bytes, want the last put (2 KiB)", cap(*got))
	}
	got := l.get()
	if cap(*got) != 1<<10 || len(*got) != 0 {
		t.Fatalf("got len %d cap %d, want an emptied 1 KiB buffer", len(*got), cap(*got))
	}
	if l.bytes != 0 || len(l.free) != 0 {
		t.Fatalf("drained list holds %d bytes in %d buffers", l.bytes, len(l.free))
	}
}
