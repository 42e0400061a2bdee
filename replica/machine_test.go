package replica_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// The toy state machine of the simulation tests: an append-only list of
// values, each stamped by the leader with its offset (its position in the
// list) in PrepareProposal, as the partition stamps Kafka offsets. Apply
// checks the stamp, so a leader assigning an offset twice or skipping one
// fails the replica.

// appliedEntry is what a replica applied at one index.
type appliedEntry struct {
	term uint64
	data string
}

// observer collects what every replica of a run reports and records the
// violations of the properties the simulation checks.
type observer struct {
	// leaders: term → the replica that claimed leadership in it.
	leaders map[uint64]uint64
	// log: index → the first entry applied there by anyone.
	log        map[uint64]appliedEntry
	violations []string
}

func newObserver() *observer {
	return &observer{leaders: map[uint64]uint64{}, log: map[uint64]appliedEntry{}}
}

func (o *observer) violate(format string, args ...any) {
	if len(o.violations) < 20 {
		o.violations = append(o.violations, fmt.Sprintf(format, args...))
	}
}

// listMachine is one replica's incarnation of the toy state machine.
type listMachine struct {
	id      uint64
	obs     *observer
	values  []string
	entries map[uint64]appliedEntry
	applied uint64
	// next is the offset the next proposal gets on a ready leader.
	next       uint64
	leadership replica.Leadership
}

func newListMachine(id uint64, obs *observer) *listMachine {
	return &listMachine{id: id, obs: obs, entries: map[uint64]appliedEntry{}}
}

func encodeValue(offset uint64, value string) []byte {
	return fmt.Appendf(nil, "%d/%s", offset, value)
}

func decodeValue(data []byte) (uint64, string, error) {
	o, v, ok := bytes.Cut(data, []byte("/"))
	if !ok {
		return 0, "", fmt.Errorf("value %q has no offset", data)
	}
	offset, err := strconv.ParseUint(string(o), 10, 64)
	return offset, string(v), err
}

func (m *listMachine) Apply(ents []*raftpb.Entry) error {
	for _, e := range ents {
		idx := e.GetIndex()
		if idx != m.applied+1 {
			m.obs.violate("replica %d applied %d after %d", m.id, idx, m.applied)
		}
		m.applied = idx
		got := appliedEntry{term: e.GetTerm(), data: string(e.GetData())}
		m.entries[idx] = got
		if first, ok := m.obs.log[idx]; !ok {
			m.obs.log[idx] = got
		} else if first != got {
			m.obs.violate("replica %d applied %v at %d where another applied %v", m.id, got, idx, first)
		}
		if e.GetType() != raftpb.EntryNormal || len(e.GetData()) == 0 {
			continue
		}
		offset, value, err := decodeValue(e.GetData())
		if err != nil {
			return err
		}
		if offset != uint64(len(m.values)) {
			return fmt.Errorf("entry %d stamped offset %d, the list has %d values", idx, offset, len(m.values))
		}
		m.values = append(m.values, value)
	}
	return nil
}

func (m *listMachine) LeadershipChanged(l replica.Leadership) {
	if l.Leader == m.id && l.Term > 0 {
		if other, ok := m.obs.leaders[l.Term]; ok && other != m.id {
			m.obs.violate("replicas %d and %d both led term %d", other, m.id, l.Term)
		}
		m.obs.leaders[l.Term] = m.id
	}
	if l.Ready && !m.leadership.Ready {
		// Everything before the term's first entry is applied: offsets go on
		// from the list's end.
		m.next = uint64(len(m.values))
	}
	m.leadership = l
}

func (m *listMachine) PrepareProposal(p *replica.Proposal, at replica.ProposalPoint) error {
	if at.Term != m.leadership.Term {
		return fmt.Errorf("prepare in term %d, leadership says %d", at.Term, m.leadership.Term)
	}
	p.Data = encodeValue(m.next, string(p.Data))
	m.next++
	return nil
}

// unstamp gives back the offset of a proposal raft dropped.
func (m *listMachine) unstamp() { m.next-- }

func (m *listMachine) Restore(snap *raftpb.Snapshot) error {
	m.values = nil
	if d := snap.GetData(); len(d) > 0 {
		m.values = strings.Split(string(d), ",")
	}
	m.applied = snap.GetMetadata().GetIndex()
	m.next = uint64(len(m.values))
	return nil
}

// snapshotData is what Restore reads back.
func (m *listMachine) snapshotData() []byte { return []byte(strings.Join(m.values, ",")) }
