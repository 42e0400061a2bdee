package txn

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// State is a transaction's state, numbered as Kafka's TransactionState (part
// of the __transaction_state format).
type State int8

const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
	Dead
	PrepareEpochFence
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", s)
	}
	return stateNames[s]
}

// Ending reports whether the transaction's markers are being written.
func (s State) Ending() bool { return s == PrepareCommit || s == PrepareAbort }

// TopicPartition names a partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func sortPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// Metadata is one transactional id's state, as __transaction_state holds it.
type Metadata struct {
	ID            string
	ProducerID    int64
	ProducerEpoch int16
	TimeoutMs     int32
	State         State
	// Partitions are the partitions of the ongoing (or ending) transaction,
	// sorted; empty otherwise.
	Partitions   []TopicPartition
	StartMs      int64 // when the transaction began; -1 when none is
	LastUpdateMs int64
}

func (m Metadata) clone() Metadata {
	m.Partitions = slices.Clone(m.Partitions)
	return m
}

// Decision is what a request leads to: an error for the client, or the
// metadata to persist (Next, nil when nothing changes) before the answer,
// which is then the Producer id and epoch of Next (or of the current
// state). Markers says that Next ends the transaction: once it is durable
// the driver writes the markers and then persists Next.Completed().
type Decision struct {
	Err  error
	Next *Metadata
	// Retry says that the client gets Err (ErrConcurrentTransactions)
	// although Next is persisted: an InitProducerId that must first abort
	// the transaction of the previous epoch.
	Retry bool
}

// Machine holds the transactions of the __transaction_state partitions a
// node leads. It is pure: requests and times go in, decisions come out; a
// decision's metadata is taken in by Apply only once the driver persisted
// it, so the Machine never holds what a crash could take back.
type Machine struct {
	cfg  Config
	txns map[string]*Metadata
}

// NewMachine returns an empty machine.
func NewMachine(cfg Config) *Machine {
	return &Machine{cfg: cfg, txns: map[string]*Metadata{}}
}

// Get returns the metadata of id.
func (m *Machine) Get(id string) (Metadata, bool) {
	t, ok := m.txns[id]
	if !ok {
		return Metadata{}, false
	}
	return t.clone(), true
}

// Apply takes in persisted metadata (a decision's Next, or a record
// replayed at load); nil removes id.
func (m *Machine) Apply(id string, md *Metadata) {
	if md == nil {
		delete(m.txns, id)
		return
	}
	c := md.clone()
	m.txns[id] = &c
}

// Unload drops the transactional ids for which drop is true, returning how many.
func (m *Machine) Unload(drop func(id string) bool) int {
	n := 0
	for id := range m.txns {
		if drop(id) {
			delete(m.txns, id)
			n++
		}
	}
	return n
}

// IDs lists the transactional ids held, sorted.
func (m *Machine) IDs() []string {
	out := make([]string, 0, len(m.txns))
	for id := range m.txns {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Init decides an InitProducerId for id: a new producer id (newID) at epoch
// 0 for an unknown id, else the next epoch of the current one (KIP-360:
// a request naming its producer id and epoch must name the current ones,
// or the previous epoch for a retry). An ongoing transaction of the
// previous epoch is aborted first, with the epoch bumped so its producer
// is fenced, and the client retries. Epoch exhaustion moves to a new
// producer id.
func (m *Machine) Init(id string, timeoutMs int32, producerID int64, producerEpoch int16, nowMs int64, newID func() (int64, error)) Decision {
	if id == "" {
		return Decision{Err: fmt.Errorf("%w: empty transactional id", ErrInvalidRequest)}
	}
	if timeoutMs <= 0 || int64(timeoutMs) > m.cfg.TransactionMaxTimeoutMs {
		return Decision{Err: fmt.Errorf("%w: %d ms, transaction.max.timeout.ms is %d", ErrInvalidTransactionTimeout, timeoutMs, m.cfg.TransactionMaxTimeoutMs)}
	}
	cur, ok := m.txns[id]
	if !ok || cur.State == Dead {
		if !ok && len(m.txns) >= m.cfg.TransactionsMax {
			return Decision{Err: fmt.Errorf("%w: %d", ErrTooManyTransactions, m.cfg.TransactionsMax)}
		}
		pid, err := newID()
		if err != nil {
			return Decision{Err: fmt.Errorf("%w: allocate a producer id: %v", ErrCoordinatorNotAvailable, err)}
		}
		return Decision{Next: &Metadata{ID: id, ProducerID: pid, ProducerEpoch: 0, TimeoutMs: timeoutMs, State: Empty, StartMs: -1, LastUpdateMs: nowMs}}
	}
	if producerID >= 0 && producerEpoch >= 0 {
		retry := producerID == cur.ProducerID && producerEpoch+1 == cur.ProducerEpoch && cur.State != Ongoing
		if producerID != cur.ProducerID || producerEpoch != cur.ProducerEpoch && !retry {
			return Decision{Err: fmt.Errorf("%w: producer %d epoch %d, current %d epoch %d", ErrProducerFenced, producerID, producerEpoch, cur.ProducerID, cur.ProducerEpoch)}
		}
		if retry {
			return Decision{} // the answer is the current producer id and epoch
		}
	}
	switch {
	case cur.State.Ending():
		return Decision{Err: fmt.Errorf("%w: %q is %v", ErrConcurrentTransactions, id, cur.State)}
	case cur.State == Ongoing:
		next := m.abortNext(cur, nowMs)
		return Decision{Next: next, Err: fmt.Errorf("%w: aborting the ongoing transaction of %q", ErrConcurrentTransactions, id), Retry: true}
	}
	next := cur.clone()
	next.TimeoutMs, next.State, next.Partitions, next.StartMs, next.LastUpdateMs = timeoutMs, Empty, nil, -1, nowMs
	if cur.ProducerEpoch >= math.MaxInt16-1 {
		pid, err := newID()
		if err != nil {
			return Decision{Err: fmt.Errorf("%w: allocate a producer id: %v", ErrCoordinatorNotAvailable, err)}
		}
		next.ProducerID, next.ProducerEpoch = pid, 0
	} else {
		next.ProducerEpoch++
	}
	return Decision{Next: &next}
}

// abortNext is the PrepareAbort that ends cur's ongoing transaction with
// the epoch bumped: the producer of the old epoch is fenced on every
// partition by the markers, which carry the new epoch.
func (m *Machine) abortNext(cur *Metadata, nowMs int64) *Metadata {
	next := cur.clone()
	next.State, next.LastUpdateMs = PrepareAbort, nowMs
	if next.ProducerEpoch < math.MaxInt16-1 {
		next.ProducerEpoch++
	}
	return &next
}

// check checks that a request of producerID at producerEpoch is id's
// current producer.
func (m *Machine) check(id string, producerID int64, producerEpoch int16) (*Metadata, error) {
	cur, ok := m.txns[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unknown transactional id %q", ErrInvalidProducerIDMapping, id)
	case cur.ProducerID != producerID:
		return nil, fmt.Errorf("%w: %q has producer %d, not %d", ErrInvalidProducerIDMapping, id, cur.ProducerID, producerID)
	case cur.ProducerEpoch != producerEpoch:
		return nil, fmt.Errorf("%w: %q epoch %d, request epoch %d", ErrProducerFenced, id, cur.ProducerEpoch, producerEpoch)
	}
	return cur, nil
}

// AddPartitions decides an AddPartitionsToTxn (and AddOffsetsToTxn, whose
// partition is the group's offsets partition): the transaction becomes
// Ongoing, started now if it was not, with tps added. Nothing to persist
// when they all are already.
func (m *Machine) AddPartitions(id string, producerID int64, producerEpoch int16, tps []TopicPartition, nowMs int64) Decision {
	cur, err := m.check(id, producerID, producerEpoch)
	if err != nil {
		return Decision{Err: err}
	}
	switch cur.State {
	case PrepareCommit, PrepareAbort:
		return Decision{Err: fmt.Errorf("%w: %q is %v", ErrConcurrentTransactions, id, cur.State)}
	case Empty, Ongoing, CompleteCommit, CompleteAbort:
	default:
		return Decision{Err: fmt.Errorf("%w: %q is %v", ErrInvalidTxnState, id, cur.State)}
	}
	next := cur.clone()
	if cur.State != Ongoing {
		next.State, next.Partitions, next.StartMs = Ongoing, nil, nowMs
	}
	added := false
	for _, tp := range tps {
		if !slices.Contains(next.Partitions, tp) {
			next.Partitions = append(next.Partitions, tp)
			added = true
		}
	}
	if !added && cur.State == Ongoing {
		return Decision{}
	}
	if len(next.Partitions) > m.cfg.PartitionsPerTransactionMax {
		return Decision{Err: fmt.Errorf("%w: a transaction of more than %d partitions", ErrInvalidRequest, m.cfg.PartitionsPerTransactionMax)}
	}
	sortPartitions(next.Partitions)
	next.LastUpdateMs = nowMs
	return Decision{Next: &next}
}

// Contains reports whether id's ongoing transaction at producerID and
// producerEpoch includes tp (KIP-890's verification of a partition's
// first transactional batch).
func (m *Machine) Contains(id string, producerID int64, producerEpoch int16, tp TopicPartition) error {
	cur, err := m.check(id, producerID, producerEpoch)
	if err != nil {
		return err
	}
	if cur.State != Ongoing || !slices.Contains(cur.Partitions, tp) {
		return fmt.Errorf("%w: %s-%d is not in the ongoing transaction of %q", ErrInvalidTxnState, tp.Topic, tp.Partition, id)
	}
	return nil
}

// End decides an EndTxn: an Ongoing transaction goes to PrepareCommit or
// PrepareAbort. A retry of an EndTxn that completed is answered as it was;
// one whose markers are still being written waits (ErrConcurrentTransactions).
func (m *Machine) End(id string, producerID int64, producerEpoch int16, commit bool, nowMs int64) Decision {
	cur, err := m.check(id, producerID, producerEpoch)
	if err != nil {
		return Decision{Err: err}
	}
	want, done := PrepareAbort, CompleteAbort
	if commit {
		want, done = PrepareCommit, CompleteCommit
	}
	switch cur.State {
	case Ongoing:
		next := cur.clone()
		next.State, next.LastUpdateMs = want, nowMs
		return Decision{Next: &next}
	case done:
		return Decision{}
	case want:
		return Decision{Err: fmt.Errorf("%w: %q is %v", ErrConcurrentTransactions, id, cur.State)}
	}
	return Decision{Err: fmt.Errorf("%w: end (commit %v) a transaction of %q that is %v", ErrInvalidTxnState, commit, id, cur.State)}
}

// Complete is what follows an ending transaction once its markers are
// written: CompleteCommit or CompleteAbort, without partitions. ok is false
// when id is not ending at producerEpoch (it moved on).
func (m *Machine) Complete(id string, producerEpoch int16, nowMs int64) (*Metadata, bool) {
	cur, ok := m.txns[id]
	if !ok || !cur.State.Ending() || cur.ProducerEpoch != producerEpoch {
		return nil, false
	}
	next := cur.clone()
	next.State, next.Partitions, next.StartMs, next.LastUpdateMs = CompleteCommit, nil, -1, nowMs
	if cur.State == PrepareAbort {
		next.State = CompleteAbort
	}
	return &next, true
}

// Expired lists the ongoing transactions whose timeout passed at nowMs,
// sorted, for the driver to abort (Abort).
func (m *Machine) Expired(nowMs int64) []string {
	var out []string
	for id, t := range m.txns {
		if t.State == Ongoing && t.StartMs >= 0 && nowMs >= t.StartMs+int64(t.TimeoutMs) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// IdleExpired lists the transactional ids with no transaction in
// progress (Empty, CompleteCommit, CompleteAbort) whose last change is
// IDExpirationMs old at nowMs, sorted, for the driver to remove.
func (m *Machine) IdleExpired(nowMs int64) []string {
	var out []string
	for id, t := range m.txns {
		idle := t.State == Empty || t.State == CompleteCommit || t.State == CompleteAbort
		if idle && nowMs-t.LastUpdateMs >= m.cfg.IDExpirationMs {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Abort decides the abort of id's ongoing transaction by the coordinator
// (timeout, or an operator): PrepareAbort with the epoch bumped, fencing
// the producer. Nothing when it is not ongoing.
func (m *Machine) Abort(id string, nowMs int64) Decision {
	cur, ok := m.txns[id]
	if !ok || cur.State != Ongoing {
		return Decision{}
	}
	return Decision{Next: m.abortNext(cur, nowMs)}
}

// Ending lists the transactions whose markers are to be written, sorted:
// after a load, a coordinator resumes them.
func (m *Machine) Ending() []Metadata {
	var out []Metadata
	for _, id := range m.IDs() {
		if t := m.txns[id]; t.State.Ending() {
			out = append(out, t.clone())
		}
	}
	return out
}
