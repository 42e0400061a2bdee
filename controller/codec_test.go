package controller

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

// An entry is a valid one-record Kafka batch at the stamped offset and
// epoch, and decodes back to the command bytes.
func TestEntryRoundTrip(t *testing.T) {
	whole, err := encodeEntry([]byte("command"), 41, 7, 1234)
	if err != nil {
		t.Fatal(err)
	}
	h, value, err := decodeEntry(whole)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 41 || h.NextOffset() != 42 || h.PartitionLeaderEpoch != 7 || !bytes.Equal(value, []byte("command")) {
		t.Fatalf("header %+v value %q", h, value)
	}
	if _, err := encodeEntry(nil, 0, 1<<31, 0); err == nil {
		t.Fatal("a term past int32 was stamped")
	}
	two := batch.Build([]batch.Record{{Value: []byte("a")}, {Value: []byte("b")}}, batch.None)
	for _, bad := range [][]byte{nil, whole[:len(whole)-1], two} {
		if _, _, err := decodeEntry(bad); !errors.Is(err, errBadEntry) {
			t.Errorf("decode %d bytes: %v, want errBadEntry", len(bad), err)
		}
	}
}

func TestSnapshotEnvelope(t *testing.T) {
	b := encodeSnapshot(99, []byte("state"))
	next, st, err := decodeSnapshot(b)
	if err != nil || next != 99 || string(st) != "state" {
		t.Fatalf("%d %q %v", next, st, err)
	}
	for _, bad := range [][]byte{nil, b[:13], append([]byte("XRMS"), b[4:]...), append(append([]byte(nil), b[:4]...), append([]byte{0, 2}, b[6:]...)...)} {
		if _, _, err := decodeSnapshot(bad); !errors.Is(err, errBadSnapshot) {
			t.Errorf("decode % x: %v", bad, err)
		}
	}
}

func TestFramePayloads(t *testing.T) {
	id, cmd, err := decodePropose(encodePropose(5, []byte("cmd")))
	if err != nil || id != 5 || string(cmd) != "cmd" {
		t.Fatalf("propose: %d %q %v", id, cmd, err)
	}
	want := forwardResult{requestID: 6, status: statusApplied, index: 12, body: []byte("res")}
	got, err := decodeResult(encodeResult(want))
	if err != nil || got.requestID != 6 || got.status != statusApplied || got.index != 12 || string(got.body) != "res" {
		t.Fatalf("result: %+v %v", got, err)
	}
	live := forwardResult{requestID: 7, status: statusRefusedLive, body: []byte("alive")}
	if got, err := decodeResult(encodeResult(live)); err != nil || got.status != statusRefusedLive ||
		!errors.Is(forwardedErr(2, got), ErrLiveIncarnation) || !errors.Is(forwardedErr(2, got), ErrRefused) {
		t.Fatalf("live refusal: %+v %v", got, err)
	}
	if r := resultOf(8, 0, nil, fmt.Errorf("wrapped: %w", ErrLiveIncarnation)); r.status != statusRefusedLive {
		t.Fatalf("resultOf a live refusal: status %d", r.status)
	}
	bad := encodeResult(want)
	bad[8] = byte(statusRefusedLive) + 1
	for _, p := range [][]byte{nil, make([]byte, 7), make([]byte, 16), bad} {
		_, err1 := decodeResult(p)
		if !errors.Is(err1, errBadFrame) {
			t.Errorf("result of % x: %v", p, err1)
		}
	}
	if _, _, err := decodePropose(make([]byte, 7)); !errors.Is(err, errBadFrame) {
		t.Errorf("short propose: %v", err)
	}
}
