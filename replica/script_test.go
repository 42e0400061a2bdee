package replica_test

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/script"
	"github.com/cairnlog/cairn/replica"
)

// A scenario file (testdata/*.txt) is a list of steps in the form package
// internal/script reads.
//
// go test ./replica -run TestScripts -rewrite regenerates the expected
// output in place; review the diff before keeping it. The commands are
// those of scriptRunner.run.
var rewrite = flag.Bool("rewrite", false, "rewrite scenario expectations with the actual output")

// TestScripts runs the scenarios of testdata/*.txt on three (or more)
// simulated replicas of the toy state machine; after every step the
// simulation's properties must hold.
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario files (%v)", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			steps := script.Parse(t, path)
			sr := &scriptRunner{t: t}
			for i := range steps {
				s := &steps[i]
				fields := strings.Fields(s.Command)
				args := map[string]string{}
				for _, f := range fields[1:] {
					k, v, _ := strings.Cut(f, "=")
					args[k] = v
				}
				got := strings.TrimRight(sr.run(fields[0], args), "\n")
				if sr.w != nil {
					if v := sr.w.check(); len(v) > 0 {
						t.Fatalf("%s step %d %q: properties violated:\n%s", path, i+1, s.Command, strings.Join(v, "\n"))
					}
				}
				if *rewrite {
					s.Expected = got
					continue
				}
				if got != s.Expected {
					t.Fatalf("%s step %d %q:\n got:\n%s\n want:\n%s", path, i+1, s.Command, got, s.Expected)
				}
			}
			if *rewrite {
				script.Write(t, path, steps)
			}
		})
	}
}

type scriptRunner struct {
	t *testing.T
	w *world
}

func (sr *scriptRunner) num(args map[string]string, key string) uint64 {
	v, err := strconv.ParseUint(args[key], 10, 64)
	if err != nil {
		sr.t.Fatalf("argument %s=%q: %v", key, args[key], err)
	}
	return v
}

func (sr *scriptRunner) ids(s string) []uint64 {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			sr.t.Fatalf("id list %q: %v", s, err)
		}
		out = append(out, v)
	}
	return out
}

// leader is the current ready leader; the script fails without one.
func (sr *scriptRunner) leader() uint64 {
	id, ok := sr.w.c.Leader()
	if !ok {
		sr.t.Fatal("no ready leader")
	}
	return id
}

func errText(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

func (sr *scriptRunner) run(cmd string, args map[string]string) string {
	if cmd == "new" {
		sr.w = newWorld(sr.t, worldConfig{seed: sr.num(args, "seed"), voters: sr.ids(args["voters"]), syncDelayMs: int64(sr.num(args, "sync"))})
		return ""
	}
	w, c := sr.w, sr.w.c
	switch cmd {
	case "state":
		return w.state()
	case "run":
		w.run(int64(sr.num(args, "ms")))
		return ""
	case "elect":
		// Waits for a ready leader, among the given nodes if any.
		among := c.IDs()
		if args["among"] != "" {
			among = sr.ids(args["among"])
		}
		var id uint64
		found := func() bool {
			for _, n := range among {
				if node := c.Node(n); node.Up && node.Replica.Leadership().Ready {
					id = n
					return true
				}
			}
			return false
		}
		if !w.runUntil(found, int64(sr.num(args, "max"))) {
			return "no leader"
		}
		return fmt.Sprintf("leader %d term %d at %d ms", id, c.Node(id).Replica.Leadership().Term, c.NowMs)
	case "campaign":
		return errText(c.Do(sr.num(args, "node"), (*replica.Replica).Campaign))
	case "propose":
		at, err := w.propose(sr.num(args, "node"), args["value"])
		if err != nil {
			return errText(err)
		}
		return fmt.Sprintf("ok index=%d term=%d", at.Index, at.Term)
	case "settle":
		if !w.runUntil(w.settled, int64(sr.num(args, "max"))) {
			return "not settled"
		}
		return ""
	case "acks":
		var b strings.Builder
		for _, p := range w.proposals {
			fmt.Fprintf(&b, "%s on %d at %d/%d: %s\n", p.value, p.node, p.at.Index, p.at.Term, w.outcome(p))
		}
		return b.String()
	case "crash":
		c.Crash(sr.num(args, "node"))
		return ""
	case "restart":
		return errText(c.Restart(sr.num(args, "node")))
	case "sync":
		return errText(c.SyncNow(sr.num(args, "node")))
	case "isolate":
		c.Net.Isolate(sr.num(args, "node"), c.IDs())
		return ""
	case "split":
		var sides [][]uint64
		for _, side := range strings.Split(args["sides"], "/") {
			sides = append(sides, sr.ids(side))
		}
		c.Net.Split(sides...)
		return ""
	case "heal":
		c.Net.Heal()
		return ""
	case "transfer":
		to := sr.num(args, "to")
		return errText(c.Do(sr.leader(), func(r *replica.Replica) error { r.TransferLeader(to); return nil }))
	case "add":
		return errText(c.AddNode(sr.num(args, "node"), replica.NewMemStorage()))
	case "conf":
		return errText(w.confChange(sr.leader(), strings.ReplaceAll(args["changes"], ",", " "), args["transition"] == "explicit"))
	case "compact":
		return errText(w.compact(sr.num(args, "node")))
	case "fail-syncs":
		c.Node(sr.num(args, "node")).Storage.FailSyncs()
		return ""
	case "err":
		return errText(c.Node(sr.num(args, "node")).Replica.Err())
	case "read":
		ctx := []byte(args["ctx"])
		return errText(c.Do(sr.num(args, "node"), func(r *replica.Replica) error { r.ReadIndex(ctx); return nil }))
	case "reads":
		var b strings.Builder
		for _, rs := range c.Reads {
			fmt.Fprintf(&b, "%s: index %d\n", rs.RequestCtx, rs.Index)
		}
		c.Reads = nil
		return b.String()
	case "conf-state":
		cs := c.Node(sr.num(args, "node")).Replica.ConfState()
		return fmt.Sprintf("voters=%v learners=%v outgoing=%v learners_next=%v auto_leave=%v",
			cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext(), cs.GetAutoLeave())
	}
	sr.t.Fatalf("unknown command %q", cmd)
	return ""
}
