package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// nemesisCluster is a cluster of `cairn serve` processes with a fault
// proxy on every link: of a pair of nodes only the lower id dials
// (package transport), and it dials the higher one through the pair's own
// proxy (--peer-dial-addr), so a fault can cut one link and leave the
// others. --peers names the nodes' own addresses. Every node runs on the
// lossy filesystem (CAIRN_TEST_LOSSYFS): a SIGKILL loses what it had not
// synced, as a power cut of that node would.
type nemesisCluster struct {
	nodes   []*cairnServer
	links   map[pairLink]*faultproxy.Proxy   // links[{a, b}], a < b: a dials b through it
	set     map[pairLink][2]faultproxy.Fault // what each proxy was last set to, by direction
	active  map[nemesisFault]bool
	applied []appliedStep // in order
}

// pairLink is the link between nodes a < b (0-based indices).
type pairLink struct{ a, b int }

// appliedStep is a step of the schedule and when it was applied (a
// restart: once the node was healthy again).
type appliedStep struct {
	step nemesisStep
	at   time.Time
}

// nemesisLossyEnv runs a node on the lossy filesystem (cmd/cairn/lossyfs.go).
const nemesisLossyEnv = "CAIRN_TEST_LOSSYFS=1"

// startNemesisCluster starts count nodes with a proxy on every link, whose
// delay jitter and drops draw from seed, and checks that every link's
// connection goes through its proxy.
func startNemesisCluster(t *testing.T, count int, seed uint64) *nemesisCluster {
	t.Helper()
	c := &nemesisCluster{active: map[nemesisFault]bool{}}
	t.Cleanup(func() { c.closeProxies() })
	front := func(listen []string) ([]string, [][]string, func(), error) {
		c.links, c.set = map[pairLink]*faultproxy.Proxy{}, map[pairLink][2]faultproxy.Fault{}
		nodeArgs := make([][]string, len(listen))
		for a := range listen {
			var dial []string
			for b := a + 1; b < len(listen); b++ {
				p, err := faultproxy.New(faultproxy.Config{Target: listen[b], Seed: seed + uint64(a*len(listen)+b)})
				if err != nil {
					c.closeProxies()
					return nil, nil, func() {}, fmt.Errorf("proxy from node %d to node %d: %w", a+1, b+1, err)
				}
				c.links[pairLink{a, b}] = p
				dial = append(dial, fmt.Sprintf("%d=%s", b+1, p.Addr()))
			}
			if len(dial) > 0 {
				nodeArgs[a] = []string{"--peer-dial-addr", strings.Join(dial, ",")}
			}
		}
		return listen, nodeArgs, c.closeProxies, nil
	}
	c.nodes = startCairnClusterOf(t, count, clusterStart{front: front, env: []string{nemesisLossyEnv}})
	c.waitLinked(t)
	return c
}

// waitLinked waits until every link's proxy carries a connection: each
// node dials each higher one through the pair's proxy.
func (c *nemesisCluster) waitLinked(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(clusterStageWaitMax)
	for l, p := range c.links {
		for p.Connections() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no connection from node %d to node %d through their proxy after %s", l.a+1, l.b+1, clusterStageWaitMax)
			}
			time.Sleep(50 * time.Millisecond) // polling the proxy's count
		}
	}
}

func (c *nemesisCluster) closeProxies() {
	for _, p := range c.links {
		_ = p.Close() // a test proxy: its close only joins goroutines
	}
	c.links = nil
}

// note writes a line into every node's kept output, so a failed run's
// logs show when each fault began and ended.
func (c *nemesisCluster) note(format string, args ...any) {
	line := fmt.Sprintf("--- %s nemesis: %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	for _, n := range c.nodes {
		fmt.Fprint(n.stderr, line)
	}
}

// apply starts or ends one fault. A killed node's restart waits until it
// is healthy, so the next step never finds more nodes faulted than the
// schedule has. Network faults set the proxies of the links they act on
// to what the faults on now ask (setLinks), since two faults on different
// nodes share the link between them.
func (c *nemesisCluster) apply(t *testing.T, s nemesisStep) {
	t.Helper()
	f := s.fault
	c.note("%s %v", map[bool]string{false: "start", true: "end"}[s.heal], f)
	if s.heal {
		delete(c.active, f)
	} else {
		c.active[f] = true
	}
	if f.kind.network() {
		c.setLinks()
		return
	}
	node := c.nodes[f.node]
	switch {
	case s.heal && f.kind == faultKill:
		node.Restart()
	case s.heal && f.kind == faultPause:
		node.signal(syscall.SIGCONT)
	case f.kind == faultKill:
		node.Kill()
	case f.kind == faultPause:
		node.signal(syscall.SIGSTOP)
	default:
		t.Fatalf("no such fault %v", f)
	}
}

// setLinks sets every proxy, each direction, to the fault the active
// faults put on it (a blackhole first), or to pass.
func (c *nemesisCluster) setLinks() {
	want := map[pairLink][2]faultproxy.Fault{}
	for l := range c.links {
		want[l] = [2]faultproxy.Fault{{Kind: faultproxy.Pass}, {Kind: faultproxy.Pass}}
	}
	for f := range c.active {
		for _, cut := range f.cuts(len(c.nodes)) {
			l, d := pairLink{int(cut.From), int(cut.To)}, faultproxy.ToTarget
			if l.a > l.b {
				l, d = pairLink{l.b, l.a}, faultproxy.ToClient
			}
			w := want[l]
			if w[d].Kind != faultproxy.Blackhole {
				w[d] = proxyFault(f)
			}
			want[l] = w
		}
	}
	for l, w := range want {
		for _, d := range []faultproxy.Direction{faultproxy.ToTarget, faultproxy.ToClient} {
			if c.set[l][d] != w[d] {
				c.links[l].Set(d, w[d])
			}
		}
		c.set[l] = w
	}
}

// proxyFault is what f sets on the links it acts on.
func proxyFault(f nemesisFault) faultproxy.Fault {
	switch f.kind {
	case faultDelay:
		return faultproxy.Fault{Kind: faultproxy.Delay, Delay: f.delay, Jitter: f.jitter}
	case faultReset:
		return faultproxy.Fault{Kind: faultproxy.Reset}
	case faultDrop:
		return faultproxy.Fault{Kind: faultproxy.Drop, Probability: f.probability}
	default:
		return faultproxy.Fault{Kind: faultproxy.Blackhole}
	}
}

// run applies the schedule's steps at their times from now on, in order;
// a step that comes late (a restart took long) delays the ones after it.
func (c *nemesisCluster) run(ctx context.Context, t *testing.T, faults []nemesisFault) {
	t.Helper()
	begin := time.Now()
	for _, s := range nemesisSteps(faults) {
		select {
		case <-time.After(time.Until(begin.Add(s.at))): // the schedule's time
		case <-ctx.Done():
			t.Fatalf("schedule stopped at %s of %s: %v", time.Since(begin).Round(time.Millisecond), s.at, ctx.Err())
		}
		c.apply(t, s)
		c.applied = append(c.applied, appliedStep{step: s, at: time.Now()})
	}
}

// during names the faults that were on at some time within gap, for the
// report of the longest time without acknowledgements.
func (c *nemesisCluster) during(gap ackGap) string {
	started := map[nemesisFault]time.Time{}
	var on []string
	for _, a := range c.applied {
		f := a.step.fault
		if !a.step.heal {
			started[f] = a.at
			continue
		}
		if started[f].Before(gap.from.Add(gap.length)) && a.at.After(gap.from) {
			on = append(on, f.String())
		}
		delete(started, f)
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ", ")
}

// heal ends every fault: every proxy passes, every process runs. The
// schedule ended them all; this is the final word whatever it did.
func (c *nemesisCluster) heal(t *testing.T) {
	t.Helper()
	c.note("heal")
	clear(c.active)
	for l, p := range c.links {
		p.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
		c.set[l] = [2]faultproxy.Fault{{Kind: faultproxy.Pass}, {Kind: faultproxy.Pass}}
	}
	for _, n := range c.nodes {
		if n.running() {
			n.signal(syscall.SIGCONT)
		} else {
			n.Restart()
		}
	}
}

// peakRSS reads each running node's peak resident set (VmHWM) since its
// last start, to show the lossy filesystem's memory stays bounded.
func (c *nemesisCluster) peakRSS() string {
	var peaks []string
	for i, n := range c.nodes {
		peak := "?"
		if n.running() {
			if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid)); err == nil {
				for _, line := range strings.Split(string(status), "\n") {
					if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						peak = strings.Join(strings.Fields(rest), " ")
					}
				}
			}
		}
		peaks = append(peaks, fmt.Sprintf("node %d %s", i+1, peak))
	}
	return strings.Join(peaks, ", ")
}
