package leaders

import (
	"cmp"
	"slices"
	"time"

	"github.com/cairnlog/cairn/transport"
)

// NextSend returns when the next heartbeat is due: at once before the
// first one (always full, so peers learn this process from scratch);
// DeltaGap after the last one when leadership changed since; otherwise
// the earlier of Interval after the last one (an empty delta keeps this
// node alive) and FullInterval after the last full one.
func (t *Table) NextSend() time.Time {
	if t.sequence == 0 {
		return time.Time{}
	}
	due := t.lastSent.Add(t.cfg.Interval)
	if full := t.lastFull.Add(t.cfg.FullInterval); full.Before(due) {
		due = full
	}
	if len(t.pending) > 0 {
		if soon := t.lastSent.Add(t.cfg.DeltaGap); soon.Before(due) {
			due = soon
		}
	}
	return due
}

// NextExpiry returns when the next live peer falls silent for the
// liveness timeout, and false when no peer is alive.
func (t *Table) NextExpiry() (time.Time, bool) {
	var next time.Time
	found := false
	for _, n := range t.nodes {
		if !n.alive {
			continue
		}
		if at := n.heardAt.Add(t.cfg.LivenessTimeout); !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found
}

// Outgoing returns the heartbeat to send at now, and false when none is
// due yet (NextSend). It is full when a full one is due, else the pending
// changes (perhaps none). Building it counts as sending: the changes are
// no longer pending.
func (t *Table) Outgoing(now time.Time) (transport.NodeHeartbeat, bool) {
	if now.Before(t.NextSend()) {
		return transport.NodeHeartbeat{}, false
	}
	full := t.sequence == 0 || !now.Before(t.lastFull.Add(t.cfg.FullInterval))
	t.sequence++
	t.lastSent = now
	hb := transport.NodeHeartbeat{
		NodeID:      t.cfg.NodeID,
		Incarnation: t.cfg.Incarnation,
		BootID:      t.cfg.BootID,
		Sequence:    t.sequence,
		SentUnixMs:  now.UnixMilli(),
		Full:        full,
	}
	if full {
		t.lastFull = now
		hb.Entries = t.fullEntries()
	} else {
		hb.Entries = t.pendingEntries()
	}
	clear(t.pending)
	return hb, true
}

// AsFull returns hb (the last heartbeat Outgoing built) as a full one: the
// same sequence, and every group this node leads. A driver sends it
// instead of a delta to a peer that may have missed earlier heartbeats
// (its frames were dropped, it reconnected).
func (t *Table) AsFull(hb transport.NodeHeartbeat) transport.NodeHeartbeat {
	if hb.Full {
		return hb
	}
	hb.Full = true
	hb.Entries = t.fullEntries()
	return hb
}

// TakeNeedsFull reports whether peer came alive or asked for the full
// list since the last heartbeat sent to it, and forgets it.
func (t *Table) TakeNeedsFull(peer uint64) bool {
	needs := t.fullFor[peer]
	delete(t.fullFor, peer)
	return needs
}

// ForPeer returns hb (the last heartbeat Outgoing built) as sent to peer:
// full when lost is true (a frame to peer was dropped) or TakeNeedsFull,
// and asking for peer's full list while this node waits for it.
func (t *Table) ForPeer(hb transport.NodeHeartbeat, peer uint64, lost bool) transport.NodeHeartbeat {
	if t.TakeNeedsFull(peer) || lost {
		hb = t.AsFull(hb)
	}
	hb.WantFull = t.wantFrom[peer]
	return hb
}

// fullEntries lists the local groups this node leads, ready, by group.
func (t *Table) fullEntries() []transport.LeaderEntry {
	var out []transport.LeaderEntry
	for g, lg := range t.local {
		if e := advertised(g, lg); e.Leader != 0 {
			out = append(out, e)
		}
	}
	sortEntries(out)
	return out
}

// pendingEntries lists the pending changes by group.
func (t *Table) pendingEntries() []transport.LeaderEntry {
	out := make([]transport.LeaderEntry, 0, len(t.pending))
	for _, e := range t.pending {
		out = append(out, e)
	}
	sortEntries(out)
	return out
}

func sortEntries(es []transport.LeaderEntry) {
	slices.SortFunc(es, func(a, b transport.LeaderEntry) int { return cmp.Compare(a.Group, b.Group) })
}
