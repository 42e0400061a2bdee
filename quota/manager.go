package quota

import (
	"sync"
	"time"

	"github.com/cairnlog/cairn/env"
)

// SensorsMax bounds the sensors a Manager keeps; past it, the one recorded
// on least recently goes (its rate restarts from zero if it comes back).
const SensorsMax = 100_000

// sensorKey is who shares one consumption: the user and client id of the
// connection, for the parts the limiting entity has (package doc).
type sensorKey struct {
	key      string
	user     string
	clientID string
	entity   Entity // the entity that set the limit: a change of limit starts afresh
}

// Manager measures each entity's consumption against the cluster's
// quotas. Safe for concurrent use.
type Manager struct {
	clock  env.Clock
	window Window
	config func() *Config // the quotas in force, read at each record

	mu         sync.Mutex
	sensors    map[sensorKey]*rate
	sensorsMax int // SensorsMax; tests lower it
}

// NewManager measures over window (DefaultWindow when zero) against the
// quotas config returns, reading the time from clock.
func NewManager(clock env.Clock, window Window, config func() *Config) *Manager {
	if window.Samples < 2 || window.SampleWindow <= 0 {
		window = DefaultWindow
	}
	return &Manager{clock: clock, window: window, config: config, sensors: map[sensorKey]*rate{}, sensorsMax: SensorsMax}
}

// Record adds amount (bytes, or percent-seconds of handling time for
// RequestPercentage) to the consumption of key by a connection of user (""
// when unauthenticated) and clientID, and returns how long the connection
// must back off: zero when no quota limits it or it is within its quota.
func (m *Manager) Record(key, user, clientID string, amount float64) time.Duration {
	limit, from, ok := m.config().Resolve(user, clientID, key)
	if !ok {
		return 0
	}
	k := sensorKey{key: key, entity: from}
	if from.User.Kind != Absent {
		k.user = user
	}
	if from.ClientID.Kind != Absent {
		k.clientID = clientID
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.sensors[k]
	if r == nil {
		m.makeRoom(now)
		r = newRate(m.window)
		m.sensors[k] = r
	}
	r.record(now, amount)
	// One back-off is capped at the window's span: by then the samples
	// that put the client over are gone.
	return min(r.throttle(now, limit), m.window.Span())
}

// makeRoom drops sensors idle for a whole window (their rate is zero) when
// the map is full, and the least recently recorded one if none is.
func (m *Manager) makeRoom(now time.Time) {
	if len(m.sensors) < m.sensorsMax {
		return
	}
	var stalest sensorKey
	var stalestAt time.Time
	for k, r := range m.sensors {
		at := r.lastRecorded()
		if now.Sub(at) >= m.window.Span() {
			delete(m.sensors, k)
			continue
		}
		if stalestAt.IsZero() || at.Before(stalestAt) {
			stalest, stalestAt = k, at
		}
	}
	if len(m.sensors) >= m.sensorsMax {
		delete(m.sensors, stalest)
	}
}

// Sensors is how many sensors the manager keeps.
func (m *Manager) Sensors() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sensors)
}
