package leaders

import (
	"reflect"
	"testing"
	"time"

	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// rep is the replica id of node's first incarnation.
func rep(node uint64) uint64 { return node<<transport.IncarnationBits | 1 }

func newTestTable(t *testing.T, node uint64) *Table {
	t.Helper()
	tab, err := NewTable(Config{NodeID: node, Incarnation: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// hb is a heartbeat of node's first incarnation.
func hb(node, seq uint64, full bool, entries ...transport.LeaderEntry) transport.NodeHeartbeat {
	return transport.NodeHeartbeat{NodeID: node, Incarnation: 1, Sequence: seq, Full: full, Entries: entries}
}

// leads says node's replica leads group in term.
func leads(group, term, node uint64) transport.LeaderEntry {
	return transport.LeaderEntry{Group: group, Term: term, Leader: rep(node)}
}

// gone says the sender no longer leads group, whose term is term.
func gone(group, term uint64) transport.LeaderEntry {
	return transport.LeaderEntry{Group: group, Term: term}
}

// leaderOf is Leader in one comparable value: node, term, ok.
type leaderOf struct {
	node, term uint64
	ok         bool
}

func lookup(tab *Table, group uint64) leaderOf {
	node, replicaID, term, ok := tab.Leader(group)
	if ok && replicaID != rep(node) {
		panic("leader replica not of its node")
	}
	return leaderOf{node, term, ok}
}

func receive(t *testing.T, tab *Table, at time.Time, h transport.NodeHeartbeat) bool {
	t.Helper()
	changed, err := tab.Receive(at, h)
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

// TestMergeRules feeds node 1's table heartbeats of nodes 2 and 3, in
// order, and checks group 7's leader after each.
func TestMergeRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []transport.NodeHeartbeat
		want  leaderOf
	}{
		{"first news", []transport.NodeHeartbeat{hb(2, 1, true, leads(7, 3, 2))}, leaderOf{2, 3, true}},
		{"higher term wins", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, true, leads(7, 4, 3))}, leaderOf{3, 4, true}},
		{"stale term ignored", []transport.NodeHeartbeat{
			hb(3, 1, true, leads(7, 4, 3)), hb(2, 1, true, leads(7, 3, 2))}, leaderOf{3, 4, true}},
		{"stale term ignored once the leader is unknown", []transport.NodeHeartbeat{
			hb(3, 1, true, leads(7, 4, 3)), hb(3, 2, false, gone(7, 4)), hb(2, 1, true, leads(7, 3, 2))}, leaderOf{0, 4, false}},
		{"a stale clear is ignored", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(2, 2, false, gone(7, 2))}, leaderOf{2, 3, true}},
		{"same term keeps the known leader", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, true, leads(7, 3, 3))}, leaderOf{2, 3, true}},
		{"the leader's node clears it", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(2, 2, false, gone(7, 3))}, leaderOf{0, 3, false}},
		{"another node cannot clear it", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, false, gone(7, 3))}, leaderOf{2, 3, true}},
		{"a clear in a higher term clears", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, false, gone(7, 5))}, leaderOf{0, 5, false}},
		{"a cleared leader is filled in the same term", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(2, 2, false, gone(7, 3)), hb(3, 1, false, leads(7, 3, 3))}, leaderOf{3, 3, true}},
		{"a full list clears what it omits", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2), leads(8, 1, 2)), hb(2, 2, true, leads(8, 1, 2))}, leaderOf{0, 3, false}},
		{"a full list of another node leaves it", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, true)}, leaderOf{2, 3, true}},
		{"a repeated delta is ignored", []transport.NodeHeartbeat{
			hb(2, 5, true, leads(7, 3, 2)), hb(2, 6, false, gone(7, 3)), hb(2, 7, false, leads(7, 3, 2)), hb(2, 6, false, gone(7, 3))}, leaderOf{2, 3, true}},
		{"an older incarnation is ignored", []transport.NodeHeartbeat{
			{NodeID: 2, Incarnation: 2, Sequence: 1, Full: true}, hb(2, 9, true, leads(7, 3, 2))}, leaderOf{0, 0, false}},
		{"a new incarnation clears the old one's leaders", []transport.NodeHeartbeat{
			hb(2, 4, true, leads(7, 3, 2)), {NodeID: 2, Incarnation: 2, Sequence: 1}}, leaderOf{0, 3, false}},
		{"a leader on another node than the sender is dropped", []transport.NodeHeartbeat{
			hb(2, 1, true, leads(7, 3, 2)), hb(3, 1, false, leads(7, 4, 2))}, leaderOf{2, 3, true}},
		{"a full list naming another node's leader is dropped", []transport.NodeHeartbeat{
			hb(3, 1, true, leads(7, 4, 2))}, leaderOf{0, 0, false}},
		{"a restarted process starts with a full list", []transport.NodeHeartbeat{
			hb(2, 40, true, leads(7, 3, 2)), hb(2, 1, true), hb(2, 2, false, leads(7, 5, 2))}, leaderOf{2, 5, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := newTestTable(t, 1)
			for i, h := range tc.steps {
				receive(t, tab, start.Add(time.Duration(i)*time.Millisecond), h)
			}
			if got := lookup(tab, 7); got != tc.want {
				t.Fatalf("group 7: %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestReceiveReportsChanges: a heartbeat that changes nothing a reader
// sees reports no change, so waiters are not woken for nothing.
func TestReceiveReportsChanges(t *testing.T) {
	tab := newTestTable(t, 1)
	if !receive(t, tab, start, hb(2, 1, true, leads(7, 3, 2))) {
		t.Fatal("first heartbeat reported no change")
	}
	if receive(t, tab, start.Add(time.Millisecond), hb(2, 2, false)) {
		t.Fatal("keepalive reported a change")
	}
	if receive(t, tab, start.Add(2*time.Millisecond), hb(2, 3, true, leads(7, 3, 2))) {
		t.Fatal("repeated full list reported a change")
	}
	if _, err := tab.Receive(start, hb(1, 1, true)); err == nil {
		t.Fatal("a heartbeat from this node itself was accepted")
	}
}

// TestNodeExpiry: a peer silent for the liveness timeout is dead and its
// leaders unknown (terms kept); its next heartbeat revives it.
func TestNodeExpiry(t *testing.T) {
	tab := newTestTable(t, 1)
	timeout := tab.Config().LivenessTimeout
	receive(t, tab, start, hb(2, 1, true, leads(7, 3, 2)))
	receive(t, tab, start, hb(3, 1, true, leads(8, 1, 3)))
	receive(t, tab, start.Add(timeout/2), hb(3, 2, false))
	if next, ok := tab.NextExpiry(); !ok || !next.Equal(start.Add(timeout)) {
		t.Fatalf("next expiry %v %v, want %v", next, ok, start.Add(timeout))
	}
	if tab.Expire(start.Add(timeout-time.Nanosecond)) || !tab.Alive(2, start.Add(timeout-time.Nanosecond)) {
		t.Fatal("node 2 expired early")
	}
	if !tab.Expire(start.Add(timeout)) {
		t.Fatal("expiry of node 2 reported no change")
	}
	if tab.Alive(2, start.Add(timeout)) || !tab.Alive(3, start.Add(timeout)) || !tab.Alive(1, start.Add(time.Hour)) {
		t.Fatal("liveness wrong after node 2's expiry")
	}
	if got := lookup(tab, 7); got != (leaderOf{0, 3, false}) {
		t.Fatalf("group 7 after expiry: %+v", got)
	}
	if got := lookup(tab, 8); got != (leaderOf{3, 1, true}) {
		t.Fatalf("group 8 of the live node: %+v", got)
	}
	if tab.Expire(start.Add(timeout + time.Millisecond)) {
		t.Fatal("a dead node expired twice")
	}
	back := start.Add(2 * timeout)
	if !receive(t, tab, back, hb(2, 2, false, leads(7, 3, 2))) || !tab.Alive(2, back) {
		t.Fatal("node 2 not revived by its heartbeat")
	}
	if got := lookup(tab, 7); got != (leaderOf{2, 3, true}) {
		t.Fatalf("group 7 after node 2 came back: %+v", got)
	}
}

// TestLocalReadiness: a local leader is in the table and advertised only
// once ready; stepping down or leaving sends a clear.
func TestLocalReadiness(t *testing.T) {
	tab := newTestTable(t, 1)
	me := rep(1)
	setLocal := func(l replica.Leadership) {
		t.Helper()
		if _, err := tab.SetLocal(7, me, l); err != nil {
			t.Fatal(err)
		}
	}
	at := start
	send := func() transport.NodeHeartbeat {
		t.Helper()
		at = at.Add(tab.Config().Interval)
		h, ok := tab.Outgoing(at)
		if !ok {
			t.Fatalf("no heartbeat due at %v (next %v)", at, tab.NextSend())
		}
		return h
	}
	send() // the first, full one

	setLocal(replica.Leadership{Term: 2, Leader: me})
	if got := lookup(tab, 7); got != (leaderOf{0, 2, false}) {
		t.Fatalf("unready leader in the table: %+v", got)
	}
	if h := send(); len(h.Entries) != 0 {
		t.Fatalf("unready leader advertised: %+v", h)
	}
	setLocal(replica.Leadership{Term: 2, Leader: me, Ready: true})
	if got := lookup(tab, 7); got != (leaderOf{1, 2, true}) {
		t.Fatalf("ready leader: %+v", got)
	}
	if h := send(); !reflect.DeepEqual(h.Entries, []transport.LeaderEntry{{Group: 7, Term: 2, Leader: me}}) {
		t.Fatalf("delta after becoming ready: %+v", h)
	}
	setLocal(replica.Leadership{Term: 3, Leader: rep(2)})
	if got := lookup(tab, 7); got != (leaderOf{0, 3, false}) {
		t.Fatalf("after a new term led elsewhere: %+v", got)
	}
	if h := send(); !reflect.DeepEqual(h.Entries, []transport.LeaderEntry{gone(7, 3)}) {
		t.Fatalf("delta after stepping down: %+v", h)
	}
	setLocal(replica.Leadership{Term: 4, Leader: me, Ready: true})
	send()
	tab.RemoveLocal(7)
	if h := send(); !reflect.DeepEqual(h.Entries, []transport.LeaderEntry{gone(7, 4)}) {
		t.Fatalf("delta after removing the group: %+v", h)
	}
	if _, err := tab.SetLocal(9, rep(2), replica.Leadership{}); err == nil {
		t.Fatal("a replica of another node accepted as local")
	}
}

// TestSendSchedule: the first heartbeat is full and at once; then an
// empty delta each Interval, a change DeltaGap after the last heartbeat,
// and a full list each FullInterval.
func TestSendSchedule(t *testing.T) {
	tab := newTestTable(t, 1)
	cfg := tab.Config()
	if _, err := tab.SetLocal(5, rep(1), replica.Leadership{Term: 1, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	h, ok := tab.Outgoing(start)
	if !ok || !h.Full || h.Sequence != 1 || !reflect.DeepEqual(h.Entries, []transport.LeaderEntry{leads(5, 1, 1)}) {
		t.Fatalf("first heartbeat %+v %v", h, ok)
	}
	if _, ok := tab.Outgoing(start.Add(cfg.Interval - time.Nanosecond)); ok {
		t.Fatal("heartbeat before the interval")
	}
	if h, ok := tab.Outgoing(start.Add(cfg.Interval)); !ok || h.Full || len(h.Entries) != 0 || h.Sequence != 2 {
		t.Fatalf("keepalive %+v %v", h, ok)
	}
	last := start.Add(cfg.Interval)
	if _, err := tab.SetLocal(6, rep(1), replica.Leadership{Term: 1, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.SetLocal(4, rep(1), replica.Leadership{Term: 2, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	if got := tab.NextSend(); !got.Equal(last.Add(cfg.DeltaGap)) {
		t.Fatalf("delta due %v, want %v", got, last.Add(cfg.DeltaGap))
	}
	h, _ = tab.Outgoing(last.Add(cfg.DeltaGap))
	if h.Full || !reflect.DeepEqual(h.Entries, []transport.LeaderEntry{leads(4, 2, 1), leads(6, 1, 1)}) {
		t.Fatalf("coalesced delta %+v", h)
	}
	if full := tab.AsFull(h); !full.Full || full.Sequence != h.Sequence || len(full.Entries) != 3 {
		t.Fatalf("as full %+v", full)
	}
	at := start
	for i := 0; i < 100 && at.Before(start.Add(cfg.FullInterval)); i++ {
		at = tab.NextSend()
		h, _ = tab.Outgoing(at)
	}
	if !at.Equal(start.Add(cfg.FullInterval)) || !h.Full || len(h.Entries) != 3 {
		t.Fatalf("at %v: %+v, want the full list at %v", at, h, start.Add(cfg.FullInterval))
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{NodeID: 1, Incarnation: 1}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"no node":              func(c *Config) { c.NodeID = 0 },
		"incarnation too wide": func(c *Config) { c.Incarnation = 1 << transport.IncarnationBits },
		"gap over interval":    func(c *Config) { c.DeltaGap = c.Interval + 1 },
		"full below interval":  func(c *Config) { c.FullInterval = c.Interval - 1 },
		"liveness too short":   func(c *Config) { c.LivenessTimeout = 2 * c.Interval },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLateHeartbeatRevives: a heartbeat arriving after the liveness
// timeout, before Expire ran, still counts the peer as dead in between:
// its leaders not in that heartbeat are cleared and it gets a full list
// next.
func TestLateHeartbeatRevives(t *testing.T) {
	tab := newTestTable(t, 1)
	receive(t, tab, start, hb(2, 1, true, leads(7, 3, 2)))
	if !tab.TakeNeedsFull(2) || tab.TakeNeedsFull(2) {
		t.Fatal("a new peer does not get exactly one full list")
	}
	receive(t, tab, start.Add(time.Millisecond), hb(2, 2, false))
	if tab.TakeNeedsFull(2) {
		t.Fatal("a live peer gets a full list")
	}
	if !receive(t, tab, start.Add(time.Millisecond+tab.Config().LivenessTimeout), hb(2, 3, false)) {
		t.Fatal("late heartbeat reported no change")
	}
	if got := lookup(tab, 7); got != (leaderOf{0, 3, false}) {
		t.Fatalf("group 7 after a late delta: %+v", got)
	}
	if !tab.TakeNeedsFull(2) {
		t.Fatal("a revived peer does not get a full list")
	}
	out, _ := tab.Outgoing(start)
	if !tab.ForPeer(out, 2, false).WantFull || tab.ForPeer(out, 3, false).WantFull {
		t.Fatal("the full list of the peer revived by a delta is not asked for, or of another one is")
	}
	receive(t, tab, start.Add(2*time.Millisecond+tab.Config().LivenessTimeout), hb(2, 4, true, leads(7, 3, 2)))
	if h := tab.ForPeer(out, 2, false); h.WantFull || !h.Full {
		t.Fatalf("after the peer's full list: %+v, want a full one not asking", h)
	}
	asking := hb(2, 5, false)
	asking.WantFull = true
	receive(t, tab, start.Add(3*time.Millisecond+tab.Config().LivenessTimeout), asking)
	if !tab.ForPeer(out, 2, false).Full {
		t.Fatal("a peer asking for the full list does not get it")
	}
}

// TestForget: a deleted group's row goes, unless a replica of it is here.
func TestForget(t *testing.T) {
	tab := newTestTable(t, 1)
	receive(t, tab, start, hb(2, 1, true, leads(7, 3, 2)))
	if _, err := tab.SetLocal(8, rep(1), replica.Leadership{Term: 2, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	if !tab.Forget(7) || tab.Forget(7) || tab.Forget(8) {
		t.Fatal("Forget reported wrongly")
	}
	if s := tab.Snapshot(start); len(s.Groups) != 1 || s.Groups[0].Group != 8 || !s.Groups[0].Local {
		t.Fatalf("rows after Forget: %+v", s.Groups)
	}
}

// booted is h sent by the sender process of boot id boot.
func booted(boot uint64, h transport.NodeHeartbeat) transport.NodeHeartbeat {
	h.BootID = boot
	return h
}

// TestRestartedSenderIsHeard: a sender restarted within its incarnation
// (a new boot id, its sequence from 1 again) whose first full heartbeat
// is lost: its deltas still apply and keep it alive, its old leaders are
// cleared, its full list is asked for, and it gets this node's.
func TestRestartedSenderIsHeard(t *testing.T) {
	tab := newTestTable(t, 1)
	now := start
	receive(t, tab, now, booted(10, hb(2, 1, true, leads(8, 2, 2))))
	for seq := uint64(2); seq <= 100; seq++ {
		now = now.Add(200 * time.Millisecond)
		receive(t, tab, now, booted(10, hb(2, seq, false)))
	}
	tab.TakeNeedsFull(2)
	// The restarted process's full heartbeat 1 is lost.
	now = now.Add(200 * time.Millisecond)
	if !receive(t, tab, now, booted(11, hb(2, 2, false, leads(7, 5, 2)))) {
		t.Fatal("the restarted sender's first delta reported no change")
	}
	for seq := uint64(3); seq <= 20; seq++ {
		now = now.Add(200 * time.Millisecond)
		receive(t, tab, now, booted(11, hb(2, seq, false)))
	}
	if got := lookup(tab, 7); got != (leaderOf{2, 5, true}) {
		t.Fatalf("group 7 announced by the restarted sender: %+v", got)
	}
	if got := lookup(tab, 8); got != (leaderOf{0, 2, false}) {
		t.Fatalf("group 8 led by the old process: %+v, want cleared", got)
	}
	if !tab.Alive(2, now) {
		t.Fatal("the restarted sender is taken for dead while it sends")
	}
	out, _ := tab.Outgoing(now)
	if h := tab.ForPeer(out, 2, false); !h.Full || !h.WantFull {
		t.Fatalf("to the restarted sender: %+v, want a full list asking for its own", h)
	}
	if gaps := tab.Snapshot(now).Nodes[0].Gaps; gaps != 1 {
		t.Fatalf("gaps %d, want 1 (its lost heartbeat 1)", gaps)
	}
	receive(t, tab, now, booted(11, hb(2, 21, true, leads(7, 5, 2))))
	if tab.ForPeer(out, 2, false).WantFull {
		t.Fatal("still asking for the full list after it came")
	}
}

// TestStaleDeltaKeepsSenderAlive: a delta not newer than the last one
// applied is not applied, but its sender sent it: it stays alive.
func TestStaleDeltaKeepsSenderAlive(t *testing.T) {
	tab := newTestTable(t, 1)
	timeout := tab.Config().LivenessTimeout
	receive(t, tab, start, hb(2, 50, true, leads(7, 3, 2)))
	now := start
	for seq := uint64(2); now.Before(start.Add(2 * timeout)); seq++ {
		now = now.Add(200 * time.Millisecond)
		if receive(t, tab, now, hb(2, seq, false, gone(7, 3))) {
			t.Fatalf("stale delta %d reported a change", seq)
		}
	}
	if !tab.Alive(2, now) {
		t.Fatal("a sender of stale deltas is taken for dead")
	}
	if got := lookup(tab, 7); got != (leaderOf{2, 3, true}) {
		t.Fatalf("group 7: %+v, stale deltas applied", got)
	}
}
