package eventstore

import (
	"context"
	"sync"

	"github.com/cairnlog/cairn/partition"
)

// Reads served by a partition's leader (ReadStream, GetStreamMetadata,
// ReadTopic, the start of a subscription's catch-up) first confirm that
// this node still leads (partition.Linearize: a quorum round, shared by
// the reads of a partition that arrive together): a leader cut off from
// the majority, or paused, that has not stepped down yet would otherwise
// answer without an event a new leader has appended and acknowledged.
// Such a read waits until it steps down and answers UNAVAILABLE, naming
// the leader then known, so the client retries there. On a single node
// the check costs nothing.

// linearize confirms, before a read of p served here, that this node
// still leads p and has applied every write acknowledged before the call.
func (s *Service) linearize(ctx context.Context, p *partition.Partition) error {
	if _, err := p.Linearize(ctx); err != nil {
		return s.partitionError(p.Topic(), p.Index(), err)
	}
	return nil
}

// linearizeAll confirms several partitions at once: their rounds run side
// by side, so a topic read waits for the slowest, not for their sum.
func (s *Service) linearizeAll(ctx context.Context, parts []*partition.Partition) error {
	if len(parts) == 1 {
		return s.linearize(ctx, parts[0])
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for k, p := range parts {
		wg.Go(func() { errs[k] = s.linearize(ctx, p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
