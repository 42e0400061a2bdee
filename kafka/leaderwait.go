package kafka

import (
	"context"
	"time"
)

// leaderWaitMax bounds how long a Metadata answer waits for a partition
// with no leader to get one, and how long a produce to a node that won
// the partition's election waits for its leadership to be ready (its
// term's first entry applied). A leader's process that ended is replaced
// within milliseconds once the survivors see its address refuse
// connections (transport.Gone), but the first Metadata after the loss
// usually comes before that: answered at once it would name the dead
// leader or none, and a client (franz-go, by default) asks again only
// after its MetadataMinAge of 5 s. When only one survivor sees the loss,
// the other grants its vote once its leader's lease expires, an election
// timeout (0.6 s by default) after the last heartbeat: the bound covers
// that, and stays well under any client's request timeout (30 s in
// Kafka's clients, 10 s plus the request's own in franz-go). A partition
// that stays leaderless (no quorum) is answered after it.
const leaderWaitMax = 1500 * time.Millisecond

// awaitLeaders calls done at each change of the leaders this node knows,
// from changed (taken before done last answered false) on, until done
// answers true, leaderWaitMax passes or ctx ends. It reports what done
// answered last.
func (s *Server) awaitLeaders(ctx context.Context, changed <-chan struct{}, done func() bool) bool {
	timer := s.cluster.Env().Clock.NewTimer(leaderWaitMax)
	defer timer.Stop()
	for {
		select {
		case <-changed:
		case <-timer.C():
			return false
		case <-ctx.Done():
			return false
		}
		changed = s.view.LeadersChanged()
		if done() {
			return true
		}
	}
}
