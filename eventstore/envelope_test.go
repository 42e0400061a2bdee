package eventstore

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/streams"
)

// TestGeneratedEventIDsComeFromTheEnv: events appended without an id get
// distinct version-4 UUIDs drawn from the given randomness, so a seeded
// environment gives the same ids on every run.
func TestGeneratedEventIDsComeFromTheEnv(t *testing.T) {
	events := []*eventstorev1.Event{{Type: "created"}, {Type: "renamed"}}
	ids := func(seed uint64) []string {
		recs, err := eventRecords("t", "s", streams.Expected{Kind: streams.ExpectAny}, events, time.Unix(0, 0), env.NewSeededRand(seed))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			for _, h := range r.Headers {
				if h.Key == streams.HeaderID {
					out = append(out, string(h.Value))
				}
			}
		}
		return out
	}
	first := ids(1)
	if len(first) != 2 || first[0] == first[1] {
		t.Fatalf("ids %v, want two distinct", first)
	}
	for _, id := range first {
		if parsed, err := uuid.Parse(id); err != nil || parsed.Version() != 4 {
			t.Fatalf("id %q is not a version-4 UUID (%v)", id, err)
		}
	}
	if again := ids(1); !slices.Equal(first, again) {
		t.Fatalf("seed 1 gave %v, then %v", first, again)
	}
}
