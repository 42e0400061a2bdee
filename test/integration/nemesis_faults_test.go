package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// nemesisCluster is a cluster of `cairn serve` processes with a fault
// proxy in front of each node's Raft listener: the --peers list names the
// proxies, each node binds its own address (--raft-addr).
type nemesisCluster struct {
	nodes   []*cairnServer
	proxies []*faultproxy.Proxy // proxies[i] in front of nodes[i]
	applied []appliedStep       // in order
}

// appliedStep is a step of the schedule and when it was applied (a
// restart: once the node was healthy again).
type appliedStep struct {
	step nemesisStep
	at   time.Time
}

// startNemesisCluster starts count nodes behind proxies whose delay
// jitter and drops draw from seed.
func startNemesisCluster(t *testing.T, count int, seed uint64) *nemesisCluster {
	t.Helper()
	c := &nemesisCluster{}
	t.Cleanup(func() { c.closeProxies() })
	c.nodes = startCairnClusterOf(t, count, func(listen []string) ([]string, func(), error) {
		dialled := make([]string, len(listen))
		for i, addr := range listen {
			p, err := faultproxy.New(faultproxy.Config{Target: addr, Seed: seed + uint64(i)})
			if err != nil {
				c.closeProxies()
				return nil, func() {}, fmt.Errorf("proxy in front of node %d: %w", i+1, err)
			}
			c.proxies = append(c.proxies, p)
			dialled[i] = p.Addr()
		}
		return dialled, c.closeProxies, nil
	})
	return c
}

func (c *nemesisCluster) closeProxies() {
	for _, p := range c.proxies {
		_ = p.Close() // a test proxy: its close only joins goroutines
	}
	c.proxies = nil
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
// schedule has.
func (c *nemesisCluster) apply(t *testing.T, s nemesisStep) {
	t.Helper()
	f := s.fault
	node, proxy := c.nodes[f.node], c.proxies[f.node]
	c.note("%s %v", map[bool]string{false: "start", true: "end"}[s.heal], f)
	if s.heal {
		switch f.kind {
		case faultKill:
			node.Restart()
		case faultPause:
			node.signal(syscall.SIGCONT)
		default:
			proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
		}
		return
	}
	switch f.kind {
	case faultKill:
		node.Kill()
	case faultPause:
		node.signal(syscall.SIGSTOP)
	case faultBlackhole:
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
	case faultBlackholeIn:
		proxy.Set(faultproxy.ToTarget, faultproxy.Fault{Kind: faultproxy.Blackhole})
	case faultBlackholeOut:
		proxy.Set(faultproxy.ToClient, faultproxy.Fault{Kind: faultproxy.Blackhole})
	case faultDelay:
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Delay, Delay: f.delay, Jitter: f.jitter})
	case faultReset:
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Reset})
	case faultDrop:
		proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Drop, Probability: f.probability})
	default:
		t.Fatalf("no such fault %v", f)
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
			on = append(on, f.kind.String()+" node "+fmt.Sprint(f.node+1))
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
	for _, p := range c.proxies {
		p.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
	}
	for _, n := range c.nodes {
		if n.running() {
			n.signal(syscall.SIGCONT)
		} else {
			n.Restart()
		}
	}
}
