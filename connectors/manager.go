package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc/clusterlog"
	"github.com/cairnlog/cairn/cdc/postgres"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/txn"
)

// Bounds of the manager's loop and of restarts.
const (
	// pollInterval is how often the manager checks its leadership of the
	// definitions topic and reads what was appended to it.
	pollInterval = time.Second
	// restartDelayMin and restartDelayMax bound the backoff before a
	// failed connector runs again.
	restartDelayMin = time.Second
	restartDelayMax = 30 * time.Second
	// readBytesMax bounds one read of the definitions topic.
	readBytesMax = 1 << 20
	// connectorsMax bounds the definitions a node runs.
	connectorsMax = 100
)

// Manager runs the connectors defined in Topic while this node leads it.
type Manager struct {
	c      *cluster.Cluster
	clock  env.Clock
	logger *slog.Logger
	log    postgres.Log

	mu      sync.Mutex
	leading bool
	defs    Definitions
	next    int64 // the next offset of Topic to read
	running map[string]*runner

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// runner is one connector's goroutine.
type runner struct {
	def    Definition
	conn   *postgres.Connector
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	restarts int
	failed   error // ErrSlotLost: not restarted
}

// New returns a manager over c; Start runs it. With co, the node's
// transaction coordinator, a database transaction spanning partitions is
// written as one Kafka transaction (nil: one append per partition).
func New(c *cluster.Cluster, co *txn.Coordinator, logger *slog.Logger) *Manager {
	var log postgres.Log = clusterlog.New(c)
	if co != nil {
		log = clusterlog.NewTxn(c, co)
	}
	return &Manager{c: c, clock: c.Env().Clock, logger: logger, log: log, defs: Definitions{},
		running: map[string]*runner{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// Start runs the manager's loop until Close.
func (m *Manager) Start() {
	go m.loop()
}

// Close stops every connector and the loop.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
}

func (m *Manager) loop() {
	defer close(m.done)
	defer m.stopAll()
	for {
		if err := m.reconcile(); err != nil {
			m.logger.Warn("connectors: reconcile", "err", err)
		}
		t := m.clock.NewTimer(pollInterval)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-m.wake:
			t.Stop()
		case <-t.C():
		}
	}
}

// leads reports whether this node leads the definitions topic. A missing
// topic is created when create is set (the first definition), else
// nobody leads it: there is nothing to run.
func (m *Manager) leads(create bool) (bool, error) {
	if _, ok := m.c.Topic(Topic); !ok {
		if !create {
			return false, nil
		}
		_, err := m.c.CreateTopic(Topic, 1, map[string]string{"cleanup.policy": "compact"}, false)
		if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
			return false, fmt.Errorf("create %s: %w", Topic, err)
		}
	}
	l, err := m.c.Leader(Topic, 0)
	if err != nil {
		return false, err
	}
	return l.Local, nil
}

// reconcile reads new definitions and makes the running set match them.
func (m *Manager) reconcile() error {
	leading, err := m.leads(false)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !leading {
		if m.leading {
			m.logger.Info("connectors: no longer leading the definitions; stopping them")
		}
		m.leading = false
		m.stopAllLocked()
		m.defs, m.next = Definitions{}, 0
		return nil
	}
	if !m.leading {
		// Newly leading: every write acknowledged before must be read.
		p, err := m.c.Partition(Topic, 0)
		if err != nil {
			return err
		}
		if _, err := p.Linearize(context.Background()); err != nil {
			return err
		}
		m.leading = true
	}
	if err := m.catchUpLocked(); err != nil {
		return err
	}
	for name, r := range m.running {
		d, ok := m.defs[name]
		if !ok || d.Paused || !sameRun(d, r.def) {
			r.cancel()
			<-r.done
			delete(m.running, name)
		}
	}
	for name, d := range m.defs {
		if _, ok := m.running[name]; ok || d.Paused {
			continue
		}
		r, err := m.startLocked(d)
		if err != nil {
			m.logger.Warn("connectors: cannot start", "connector", name, "err", err)
			continue
		}
		m.running[name] = r
	}
	return nil
}

// sameRun reports definitions that run alike (pausing aside).
func sameRun(a, b Definition) bool {
	a.Paused, b.Paused = false, false
	return string(encode(a)) == string(encode(b))
}

// catchUpLocked reads the definitions appended since the last read.
func (m *Manager) catchUpLocked() error {
	p, err := m.c.Partition(Topic, 0)
	if err != nil {
		return err
	}
	for m.next < p.HighWatermark() {
		res, err := p.Read(m.next, readBytesMax)
		if errors.Is(err, partition.ErrOffsetOutOfRange) {
			m.next = res.LogStartOffset
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", Topic, err)
		}
		if len(res.Records) == 0 {
			return nil
		}
		lim := p.Limits()
		for rest := res.Records; len(rest) > 0; {
			h, whole, tail, err := batch.Next(rest)
			if err != nil {
				return fmt.Errorf("read %s at %d: %w", Topic, m.next, err)
			}
			rest, m.next = tail, h.NextOffset()
			if h.Control() {
				continue
			}
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return fmt.Errorf("read %s: %w", Topic, err)
			}
			for _, r := range recs {
				if err := m.defs.apply(r.Key, r.Value); err != nil {
					m.logger.Warn("connectors: skipping a definition", "err", err)
				}
			}
		}
	}
	return nil
}

// startLocked starts a connector's goroutine: it runs the connector and,
// after a failure, runs it again after a backoff; a lost slot stops it for
// good (an operator decides).
func (m *Manager) startLocked(d Definition) (*runner, error) {
	conn, err := postgres.New(d.Postgres(), m.log, m.clock, m.logger)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{def: d, conn: conn, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		delay := restartDelayMin
		for ctx.Err() == nil {
			err := conn.Run(ctx)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, postgres.ErrSlotLost) {
				r.mu.Lock()
				r.failed = err
				r.mu.Unlock()
				m.logger.Error("connectors: stopped for good", "connector", d.Name, "err", err)
				return
			}
			m.logger.Warn("connectors: restarting after a failure", "connector", d.Name, "err", err, "delay", delay)
			r.mu.Lock()
			r.restarts++
			r.mu.Unlock()
			t := m.clock.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
			delay = min(2*delay, restartDelayMax)
		}
	}()
	return r, nil
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopAllLocked()
}

func (m *Manager) stopAllLocked() {
	for _, r := range m.running {
		r.cancel()
	}
	for name, r := range m.running {
		<-r.done
		delete(m.running, name)
	}
}

// Info is what list and status show of a connector.
type Info struct {
	Definition Definition `json:"definition"` // the DSN's password masked
	State      string     `json:"state"`      // paused, starting, snapshot, streaming, restarting, failed
	Error      string     `json:"error,omitempty"`
	Restarts   int        `json:"restarts"`
	Metrics    Metrics    `json:"metrics"`
}

// Metrics are a connector's figures.
type Metrics struct {
	ConfirmedLSN         string    `json:"confirmed_lsn"`
	ServerLSN            string    `json:"server_lsn"`
	SlotLagBytes         uint64    `json:"slot_lag_bytes"`
	LagMs                int64     `json:"lag_ms"` // now - commit time of the last transaction appended
	Events               int64     `json:"events"`
	Transactions         int64     `json:"transactions"`
	StreamedTransactions int64     `json:"streamed_transactions"`
	Heartbeats           int64     `json:"heartbeats"`
	ProtocolVersion      int       `json:"protocol_version"`
	LastCommitTime       time.Time `json:"last_commit_time,omitzero"`
	SnapshotTables       int       `json:"snapshot_tables"`
	SnapshotTablesDone   int       `json:"snapshot_tables_done"`
	SnapshotRows         int64     `json:"snapshot_rows"`
}

// ready catches up with the topic for an API call: only the leader of the
// definitions answers.
func (m *Manager) ready(create bool) error {
	leading, err := m.leads(create)
	if err != nil {
		return err
	}
	if _, ok := m.c.Topic(Topic); !ok && !create {
		return errNoTopic
	}
	if !leading {
		l, _ := m.c.Leader(Topic, 0)
		return fmt.Errorf("%w: node %d leads %s", ErrNotLeader, l.Node, Topic)
	}
	return nil
}

// errNoTopic: no connector was ever created.
var errNoTopic = errors.New("no connectors topic")

// List returns every connector, by name.
func (m *Manager) List() ([]Info, error) {
	if err := m.ready(false); errors.Is(err, errNoTopic) {
		return []Info{}, nil
	} else if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUpLocked(); err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(m.defs))
	for _, d := range m.defs {
		out = append(out, m.infoLocked(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Definition.Name < out[j].Definition.Name })
	return out, nil
}

// Status returns one connector.
func (m *Manager) Status(name string) (Info, error) {
	if err := m.ready(false); errors.Is(err, errNoTopic) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	} else if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUpLocked(); err != nil {
		return Info{}, err
	}
	d, ok := m.defs[name]
	if !ok {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return m.infoLocked(d), nil
}

func (m *Manager) infoLocked(d Definition) Info {
	info := Info{Definition: d.Redacted(), State: "paused"}
	r, ok := m.running[d.Name]
	if d.Paused || !ok {
		if !d.Paused {
			info.State = "starting"
		}
		return info
	}
	st := r.conn.Status()
	r.mu.Lock()
	info.Restarts, info.Error = r.restarts, st.Error
	failed := r.failed
	r.mu.Unlock()
	info.State = st.State
	switch {
	case failed != nil:
		info.State, info.Error = "failed", failed.Error()
	case st.State == "stopped":
		info.State = "restarting"
	}
	info.Metrics = Metrics{
		ConfirmedLSN: postgres.LSNString(st.ConfirmedLSN), ServerLSN: postgres.LSNString(st.ServerLSN),
		SlotLagBytes: st.LagBytes(), Events: st.Events, Transactions: st.Transactions,
		StreamedTransactions: st.StreamedTransactions, Heartbeats: st.Heartbeats,
		ProtocolVersion: st.ProtocolVersion, LastCommitTime: st.LastCommitTime,
		SnapshotTables: st.SnapshotTables, SnapshotTablesDone: st.SnapshotTablesDone, SnapshotRows: st.SnapshotRows,
	}
	if !st.LastCommitTime.IsZero() {
		info.Metrics.LagMs = m.clock.Now().Sub(st.LastCommitTime).Milliseconds()
	}
	return info
}

// Create stores a new connector's definition; the loop starts it.
func (m *Manager) Create(ctx context.Context, d Definition) error {
	d.Version = definitionVersion
	if err := d.Validate(); err != nil {
		return err
	}
	return m.write(ctx, d.Name, true, func(old Definition, exists bool) ([]byte, error) {
		if exists {
			return nil, fmt.Errorf("%w: %s", ErrExists, d.Name)
		}
		if len(m.defs) >= connectorsMax {
			return nil, fmt.Errorf("%w: at most %d connectors", ErrInvalid, connectorsMax)
		}
		return encode(d), nil
	})
}

// Delete removes a connector (a tombstone); its topics, slot and
// publication stay.
func (m *Manager) Delete(ctx context.Context, name string) error {
	return m.write(ctx, name, false, func(_ Definition, exists bool) ([]byte, error) {
		if !exists {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, nil
	})
}

// SetPaused pauses or resumes a connector.
func (m *Manager) SetPaused(ctx context.Context, name string, paused bool) error {
	return m.write(ctx, name, false, func(old Definition, exists bool) ([]byte, error) {
		if !exists {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		old.Paused = paused
		return encode(old), nil
	})
}

// write appends the record change builds from the current definition and
// waits until it is acknowledged (acks=all). Writes take turns under the
// manager's lock, so the check and the append see the same state.
func (m *Manager) write(ctx context.Context, name string, create bool, change func(Definition, bool) ([]byte, error)) error {
	if err := m.ready(create); errors.Is(err, errNoTopic) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	} else if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUpLocked(); err != nil {
		return err
	}
	old, exists := m.defs[name]
	value, err := change(old, exists)
	if err != nil {
		return err
	}
	p, err := m.c.Partition(Topic, 0)
	if err != nil {
		return err
	}
	res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: m.clock.Now().UnixMilli(), Key: []byte(name), Value: value}}, batch.None))
	if err != nil {
		return fmt.Errorf("write %s: %w", Topic, err)
	}
	if err := p.WaitAppended(ctx, res, true); err != nil {
		return fmt.Errorf("write %s: %w", Topic, err)
	}
	if err := m.catchUpLocked(); err != nil {
		return err
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}
