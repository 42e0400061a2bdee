package main

import (
	"testing"
	"time"
)

func TestParsePids(t *testing.T) {
	pids, err := parsePids("1=100,2=200,3=300")
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 3 || pids[1] != 100 || pids[3] != 300 {
		t.Fatalf("got %v", pids)
	}
	for _, bad := range []string{"", "1", "1=x", "0=5", "1=0", "1=5,2"} {
		if _, err := parsePids(bad); err == nil {
			t.Errorf("parsePids(%q) accepted", bad)
		}
	}
}

// An answer the killed leader sent before it died, or one processed after
// the kill but from the killed node, does not end the measurement.
func TestFirstAckBySkipsTheKilledNodeAndEarlierAnswers(t *testing.T) {
	kill := time.Unix(100, 0)
	acks := []ack{
		{at: kill.Add(-time.Millisecond), node: 2},
		{at: kill.Add(time.Millisecond), node: 1},
		{at: kill.Add(900 * time.Millisecond), node: 3},
		{at: kill.Add(950 * time.Millisecond), node: 2},
	}
	got, ok := firstAckBy(acks, kill, 1)
	if !ok || got.node != 3 || got.at != kill.Add(900*time.Millisecond) {
		t.Fatalf("got %+v, %v", got, ok)
	}
	if _, ok := firstAckBy(acks[:2], kill, 1); ok {
		t.Fatal("found an acknowledgement by another node after the kill in a log without one")
	}
	if got, ok := firstAckBy(acks, time.Time{}, -1); !ok || got.node != 2 {
		t.Fatalf("any node: got %+v, %v", got, ok)
	}
}

func TestInSyncGap(t *testing.T) {
	if gap := inSyncGap([]int32{1, 2, 3}, []int32{3, 1, 2}); gap != "" {
		t.Fatalf("all in sync: %q", gap)
	}
	if gap := inSyncGap([]int32{1, 2, 3}, []int32{1}); gap != "replicas not in sync: 2,3" {
		t.Fatalf("got %q", gap)
	}
}
