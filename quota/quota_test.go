package quota

import (
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
)

var (
	alice = NamedPart("alice")
	app   = NamedPart("app")
)

// TestResolvePrecedence: for each set of configured entities, the one a
// connection of user alice and client id app is limited by is the first
// in Kafka's order that sets the key.
func TestResolvePrecedence(t *testing.T) {
	all := []Entity{
		{User: alice, ClientID: app},
		{User: alice, ClientID: DefaultPart},
		{User: alice},
		{User: DefaultPart, ClientID: app},
		{User: DefaultPart, ClientID: DefaultPart},
		{User: DefaultPart},
		{ClientID: app},
		{ClientID: DefaultPart},
	}
	// Each configured set drops the entities before i: entity i wins.
	for i, want := range all {
		var quotas []Quota
		for j, e := range all[i:] {
			quotas = append(quotas, Quota{Entity: e, Values: Values{ProducerByteRate: float64(1000 + i + j)}})
		}
		// Entities for someone else never apply.
		quotas = append(quotas, Quota{Entity: Entity{User: NamedPart("bob")}, Values: Values{ProducerByteRate: 1}},
			Quota{Entity: Entity{ClientID: NamedPart("other")}, Values: Values{ProducerByteRate: 1}})
		c := NewConfig(quotas)
		limit, from, ok := c.Resolve("alice", "app", ProducerByteRate)
		if !ok || from != want || limit != float64(1000+i) {
			t.Errorf("entities from %v: got %v %v %v, want %v %v", want, limit, from, ok, float64(1000+i), want)
		}
	}
}

func TestResolveCases(t *testing.T) {
	c := NewConfig([]Quota{
		{Entity: Entity{User: alice}, Values: Values{ProducerByteRate: 100}},
		{Entity: Entity{User: DefaultPart}, Values: Values{ConsumerByteRate: 200}},
		{Entity: Entity{ClientID: app}, Values: Values{ProducerByteRate: 300, RequestPercentage: 50}},
	})
	for _, tc := range []struct {
		name, user, client, key string
		want                    float64
		from                    Entity
		ok                      bool
	}{
		{"user's own key", "alice", "app", ProducerByteRate, 100, Entity{User: alice}, true},
		{"per key: default user sets consumer", "alice", "app", ConsumerByteRate, 200, Entity{User: DefaultPart}, true},
		{"per key: client id sets request percentage", "alice", "app", RequestPercentage, 50, Entity{ClientID: app}, true},
		{"unauthenticated: no user entity applies", "", "app", ConsumerByteRate, 0, Entity{}, false},
		{"unauthenticated: client id applies", "", "app", ProducerByteRate, 300, Entity{ClientID: app}, true},
		{"other client, other user", "bob", "x", ProducerByteRate, 0, Entity{}, false},
		{"default user covers bob", "bob", "x", ConsumerByteRate, 200, Entity{User: DefaultPart}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from, ok := c.Resolve(tc.user, tc.client, tc.key)
			if got != tc.want || from != tc.from || ok != tc.ok {
				t.Fatalf("Resolve(%q, %q, %s) = %v %v %v, want %v %v %v", tc.user, tc.client, tc.key, got, from, ok, tc.want, tc.from, tc.ok)
			}
		})
	}
}

func TestAlter(t *testing.T) {
	base := NewConfig([]Quota{{Entity: Entity{User: alice}, Values: Values{ProducerByteRate: 100, ConsumerByteRate: 200}}})
	for _, tc := range []struct {
		name    string
		set     map[Entity]Values
		remove  map[Entity][]string
		want    []Quota
		wantErr bool
	}{
		{name: "set adds a key", set: map[Entity]Values{{User: alice}: {RequestPercentage: 12.5}},
			want: []Quota{{Entity{User: alice}, Values{ProducerByteRate: 100, ConsumerByteRate: 200, RequestPercentage: 12.5}}}},
		{name: "removing every key removes the entity", remove: map[Entity][]string{{User: alice}: {ProducerByteRate, ConsumerByteRate}},
			want: []Quota{}},
		{name: "removing an absent key is nothing", remove: map[Entity][]string{{ClientID: app}: {ProducerByteRate}},
			want: []Quota{{Entity{User: alice}, Values{ProducerByteRate: 100, ConsumerByteRate: 200}}}},
		{name: "defaults sort after absent", set: map[Entity]Values{{User: DefaultPart, ClientID: DefaultPart}: {ConsumerByteRate: 5}},
			want: []Quota{{Entity{User: DefaultPart, ClientID: DefaultPart}, Values{ConsumerByteRate: 5}}, {Entity{User: alice}, Values{ProducerByteRate: 100, ConsumerByteRate: 200}}}},
		{name: "controller mutation rate is refused", set: map[Entity]Values{{User: alice}: {ControllerMutationRate: 10}}, wantErr: true},
		{name: "unknown key", set: map[Entity]Values{{User: alice}: {"bytes": 10}}, wantErr: true},
		{name: "zero rate", set: map[Entity]Values{{User: alice}: {ProducerByteRate: 0}}, wantErr: true},
		{name: "fractional byte rate", set: map[Entity]Values{{User: alice}: {ProducerByteRate: 1.5}}, wantErr: true},
		{name: "empty entity", set: map[Entity]Values{{}: {ProducerByteRate: 10}}, wantErr: true},
		{name: "empty user name", set: map[Entity]Values{{User: NamedPart("")}: {ProducerByteRate: 10}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := base.Alter(tc.set, tc.remove)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Alter succeeded: %v", got.Quotas())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q := got.Quotas(); !equalQuotas(q, tc.want) {
				t.Fatalf("got %v, want %v", q, tc.want)
			}
			if q := base.Quotas(); len(q) != 1 || len(q[0].Values) != 2 {
				t.Fatalf("Alter changed its receiver: %v", q)
			}
		})
	}
}

func equalQuotas(a, b []Quota) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Entity != b[i].Entity || len(a[i].Values) != len(b[i].Values) {
			return false
		}
		for k, v := range a[i].Values {
			if w, ok := b[i].Values[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// TestRateAndThrottle follows one producer's sensor with a manual clock:
// the rate is spread over at least 10 s, and the back-off is the time
// sending nothing brings the rate back to the limit.
func TestRateAndThrottle(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	clock := env.NewManualClock(start)
	config := NewConfig([]Quota{{Entity: Entity{ClientID: app}, Values: Values{ProducerByteRate: 1000}}})
	m := NewManager(clock, DefaultWindow, func() *Config { return config })
	steps := []struct {
		advance time.Duration
		bytes   float64
		want    time.Duration
	}{
		// 5,000 bytes over the 10 s minimum: 500 B/s, under 1000.
		{0, 5000, 0},
		// 10,000 bytes at 1 s: still 10 s, at 1000 B/s exactly.
		{time.Second, 5000, 0},
		// 20,000 bytes at 2 s: 2000 B/s, twice the limit: back off 10 s.
		{time.Second, 10000, 10 * time.Second},
		// 8 s later, sending nothing but one byte: 20,001 bytes over the
		// 10 s minimum, still 2000.1 B/s: back off 10.001 s.
		{8 * time.Second, 1, over(2000.1, 1000, 10*time.Second)},
		// At 12 s the samples begun at 0 s and 1 s are 11 s old, out of
		// the window: 10,001 bytes from 2 s on, over 10 s, 1000.1 B/s.
		{2 * time.Second, 0, over(1000.1, 1000, 10*time.Second)},
		// At 12.5 s the elapsed time passes the minimum: 10,001 bytes over
		// 10.5 s, under the limit.
		{500 * time.Millisecond, 0, 0},
		// Much later: nothing left, and 9,000 bytes is under.
		{time.Minute, 9000, 0},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		got := m.Record(ProducerByteRate, "", "app", s.bytes)
		if diff := got - s.want; diff < -time.Millisecond || diff > time.Millisecond {
			t.Fatalf("step %d at %v: throttle %v, want %v", i, clock.Now().Sub(start), got, s.want)
		}
	}
}

// TestThrottleCapped: a burst far over the limit backs off the window's
// span at most.
func TestThrottleCapped(t *testing.T) {
	clock := env.NewManualClock(time.Unix(0, 0))
	config := NewConfig([]Quota{{Entity: Entity{ClientID: DefaultPart}, Values: Values{ConsumerByteRate: 10}}})
	m := NewManager(clock, DefaultWindow, func() *Config { return config })
	if got := m.Record(ConsumerByteRate, "", "any", 1e9); got != 11*time.Second {
		t.Fatalf("throttle %v, want the cap 11s", got)
	}
}

// TestSharing: a default part gives each name its own sensor; an absent
// part is shared by every value of it.
func TestSharing(t *testing.T) {
	clock := env.NewManualClock(time.Unix(0, 0))
	config := NewConfig([]Quota{
		{Entity: Entity{User: DefaultPart}, Values: Values{ProducerByteRate: 1000}},
		{Entity: Entity{ClientID: app}, Values: Values{ConsumerByteRate: 1000}},
	})
	m := NewManager(clock, DefaultWindow, func() *Config { return config })
	// 10,000 bytes each for two users: each exactly at its own limit.
	for _, u := range []string{"alice", "bob"} {
		if got := m.Record(ProducerByteRate, u, "app", 10000); got != 0 {
			t.Fatalf("%s throttled %v under its own default quota", u, got)
		}
	}
	// Fetches of client id app by two users share one quota: the second
	// goes over.
	if got := m.Record(ConsumerByteRate, "alice", "app", 10000); got != 0 {
		t.Fatalf("first fetch throttled %v", got)
	}
	if got := m.Record(ConsumerByteRate, "bob", "app", 10000); got != 10*time.Second {
		t.Fatalf("second fetch of the shared client id: throttle %v, want 10s", got)
	}
	// No quota: not measured at all.
	if got := m.Record(ProducerByteRate, "", "other", 1e12); got != 0 || m.Sensors() != 3 {
		t.Fatalf("unlimited client: throttle %v, %d sensors", got, m.Sensors())
	}
}

// over is the back-off of a rate over limit spread over elapsed.
func over(rate, limit float64, elapsed time.Duration) time.Duration {
	return time.Duration((rate - limit) / limit * float64(elapsed))
}

// TestSensorsBounded: past the bound, idle sensors go first, then the one
// recorded on least recently; the kept ones keep their rates.
func TestSensorsBounded(t *testing.T) {
	clock := env.NewManualClock(time.Unix(0, 0))
	config := NewConfig([]Quota{{Entity: Entity{ClientID: DefaultPart}, Values: Values{ProducerByteRate: 1000}}})
	m := NewManager(clock, DefaultWindow, func() *Config { return config })
	m.sensorsMax = 2
	m.Record(ProducerByteRate, "", "idle", 1)
	clock.Advance(20 * time.Second)
	m.Record(ProducerByteRate, "", "a", 10000)
	m.Record(ProducerByteRate, "", "b", 1) // drops idle
	if m.Sensors() != 2 {
		t.Fatalf("%d sensors, want 2", m.Sensors())
	}
	clock.Advance(time.Second)
	m.Record(ProducerByteRate, "", "b", 1)
	m.Record(ProducerByteRate, "", "c", 1) // none idle: drops a, recorded least recently
	if m.Sensors() != 2 {
		t.Fatalf("%d sensors, want 2", m.Sensors())
	}
	// a starts afresh: 10,000 bytes again is exactly at the limit.
	if got := m.Record(ProducerByteRate, "", "a", 10000); got != 0 {
		t.Fatalf("a's rate survived its eviction: throttle %v", got)
	}
}
