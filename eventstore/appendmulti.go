package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/acl"
	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/streams"
	"github.com/cairnlog/cairn/txn"
)

// Coordinator is the transaction coordinator AppendMulti runs its
// transactions with: the node's txn.Coordinator, which writes the markers.
type Coordinator interface {
	Locate(id string) (cluster.Broker, error)
	InitProducerID(id string, timeoutMs int32, producerID int64, producerEpoch int16) (int64, int16, error)
	AddPartitions(id string, producerID int64, producerEpoch int16, tps []txn.TopicPartition) error
	Verify(id string, producerID int64, producerEpoch int16, tp txn.TopicPartition) error
	End(id string, producerID int64, producerEpoch int16, commit bool) error
}

const (
	// multiPartsMax bounds the parts of one AppendMulti.
	multiPartsMax = 100
	// multiSlots is how many AppendMulti transactions a node runs at once,
	// each under its own transactional id.
	multiSlots = 8
	// multiTxnTimeoutMs is the transactions' timeout: after a crash, what a
	// transaction holds is released by the coordinator's abort within it,
	// or sooner by the slot's next InitProducerId.
	multiTxnTimeoutMs = 15_000
	// busyWaitMax bounds how long a part waits for a stream another
	// transaction holds before the call gives up (ABORTED, retriable).
	busyWaitMax = 10 * time.Second
)

// transactionalAttr is the transactional bit of a batch's attributes
// (Kafka's format).
const transactionalAttr = 0x10

// multiSlot is one transactional id of the node's pool, with the producer
// id, epoch and per-partition sequences of its current epoch.
type multiSlot struct {
	id    string
	pid   int64
	epoch int16
	seq   map[txn.TopicPartition]int32
	ready bool // pid and epoch are current; false after any doubt
}

func (s *Service) initSlots() {
	s.slots = make(chan *multiSlot, multiSlots)
	for i := range multiSlots {
		s.slots <- &multiSlot{id: fmt.Sprintf("__cairn-append-multi-%d-%d", s.cluster.NodeID(), i)}
	}
	if s.cfg.Txn != nil {
		go s.fenceSlots()
	}
}

// fenceSlots gives every slot a new epoch when the node starts, which
// aborts at once what a crashed run of the node left open, rather than at
// the transaction timeout: until then the streams it wrote stay held.
// Nothing is done on a node that never ran an AppendMulti (no
// __transaction_state yet), nor for a slot whose coordinator is elsewhere.
func (s *Service) fenceSlots() {
	if _, ok := s.cluster.Topic(txn.StateTopic); !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for range multiSlots {
		sl, err := s.takeSlot(ctx)
		if err != nil {
			return
		}
		if !sl.ready {
			if err := s.initSlot(ctx, sl, false); err != nil {
				s.logger.Debug("AppendMulti slot not fenced at start; its first call does it", "id", sl.id, "err", err)
			}
		}
		s.slots <- sl
	}
}

// multiPart is one part of an AppendMulti being written.
type multiPart struct {
	index  int
	topic  string
	stream string
	p      *partition.Partition
	tp     txn.TopicPartition
	recs   []batch.Record
	res    partition.AppendResult
}

// AppendMulti implements the API: a transaction of this node over the
// partitions of its parts (docs/transactions.md). Each part is one
// transactional batch, checked by its partition against the committed
// index and what open transactions hold; the parts are written in
// (topic, partition, stream) order, so two calls over the same streams
// never wait for each other in a cycle.
func (s *Service) AppendMulti(ctx context.Context, req *connect.Request[eventstorev1.AppendMultiRequest]) (*connect.Response[eventstorev1.AppendMultiResponse], error) {
	m := req.Msg
	if s.cfg.Txn == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("AppendMulti needs the transaction coordinator"))
	}
	if n := len(m.GetParts()); n == 0 || n > multiPartsMax {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("an AppendMulti takes 1 to %d parts, not %d", multiPartsMax, n))
	}
	parts, err := s.multiParts(ctx, req)
	if err != nil {
		return nil, err
	}
	sl, err := s.takeSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { s.slots <- sl }()
	mismatches, err := s.runMulti(ctx, sl, parts)
	if err != nil {
		sl.ready = false // the next call fences whatever this one left open
		return nil, err
	}
	if len(mismatches) > 0 {
		return nil, mismatchError(mismatches)
	}
	resp := &eventstorev1.AppendMultiResponse{Parts: make([]*eventstorev1.AppendResponse, len(parts)), Duplicate: true}
	for _, pt := range parts {
		if len(pt.res.Streams) != 1 {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("part %d gave %d stream results", pt.index, len(pt.res.Streams)))
		}
		a := pt.res.Streams[0]
		resp.Duplicate = resp.Duplicate && pt.res.Duplicate
		resp.Parts[pt.index] = &eventstorev1.AppendResponse{FirstRevision: uint64(a.First), LastRevision: uint64(a.Last),
			Position: &eventstorev1.Position{Partition: pt.p.Index(), Offset: a.LastOffset}, Duplicate: pt.res.Duplicate}
	}
	return connect.NewResponse(resp), nil
}

// multiParts checks and places the parts, in write order.
func (s *Service) multiParts(ctx context.Context, req *connect.Request[eventstorev1.AppendMultiRequest]) ([]*multiPart, error) {
	seen := map[[2]string]bool{}
	var parts []*multiPart
	for i, pt := range req.Msg.GetParts() {
		if err := s.authorize(ctx, req.Peer(), acl.OpWrite, pt.GetTopic()); err != nil {
			return nil, err
		}
		if err := s.authorizeCreate(ctx, req.Peer(), pt.GetTopic()); err != nil {
			return nil, err
		}
		key := [2]string{pt.GetTopic(), pt.GetStream()}
		if seen[key] {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("part %d: stream %q of topic %q is in an earlier part", i, pt.GetStream(), pt.GetTopic()))
		}
		seen[key] = true
		if err := validateStream(pt.GetStream()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("part %d: %w", i, err))
		}
		t, err := s.topic(pt.GetTopic(), true)
		if err != nil {
			return nil, err
		}
		p, err := s.lead(ctx, pt.GetTopic(), streams.Partition([]byte(pt.GetStream()), int32(len(t.Partitions))))
		if err != nil {
			return nil, err
		}
		recs, err := eventRecords(pt.GetTopic(), pt.GetStream(), parseExpected(pt.GetExpectedRevision()), pt.GetEvents(), s.clock.Now(), s.ids)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("part %d: %w", i, err))
		}
		parts = append(parts, &multiPart{index: i, topic: pt.GetTopic(), stream: pt.GetStream(), p: p,
			tp: txn.TopicPartition{Topic: pt.GetTopic(), Partition: p.Index()}, recs: recs})
	}
	slices.SortFunc(parts, func(a, b *multiPart) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.tp.Partition, b.tp.Partition), cmp.Compare(a.stream, b.stream))
	})
	return parts, nil
}

func (s *Service) takeSlot(ctx context.Context) (*multiSlot, error) {
	select {
	case sl := <-s.slots:
		return sl, nil
	case <-ctx.Done():
		return nil, toConnectError(ctx.Err())
	}
}

// mismatch is a part whose expectation failed, checked under its
// partition's leader epoch epoch.
type mismatch struct {
	part  *multiPart
	wrong *streams.WrongExpectedRevisionError
	epoch int32
}

// runMulti runs one transaction over parts on slot sl: every part is
// written (or found to be a retry), then the transaction commits, or
// aborts when an expectation failed. It returns once a commit's markers
// are durable on every partition, so the caller reads its own writes.
func (s *Service) runMulti(ctx context.Context, sl *multiSlot, parts []*multiPart) ([]mismatch, error) {
	co := s.cfg.Txn
	if !sl.ready {
		if err := s.initSlot(ctx, sl, true); err != nil {
			return nil, err
		}
	}
	var tps []txn.TopicPartition
	for _, pt := range parts {
		if !slices.Contains(tps, pt.tp) {
			tps = append(tps, pt.tp)
		}
	}
	if err := s.retryCoordinator(ctx, sl.id, func() error { return co.AddPartitions(sl.id, sl.pid, sl.epoch, tps) }); err != nil {
		return nil, s.txnError("AddPartitionsToTxn", err)
	}
	abort := func(err error) ([]mismatch, error) {
		_ = co.End(sl.id, sl.pid, sl.epoch, false)
		return nil, err
	}
	begun := map[txn.TopicPartition]bool{}
	var mismatches []mismatch
	for _, pt := range parts {
		if !begun[pt.tp] {
			if err := s.beginOn(sl, pt); err != nil {
				return abort(err)
			}
			begun[pt.tp] = true
		}
		epoch := pt.p.LeaderEpoch()
		res, err := s.appendPart(ctx, sl, pt)
		var wrong *streams.WrongExpectedRevisionError
		switch {
		case errors.As(err, &wrong):
			mismatches = append(mismatches, mismatch{part: pt, wrong: wrong, epoch: epoch})
			continue
		case err != nil:
			return abort(err)
		}
		pt.res = res
		if !res.Duplicate {
			sl.seq[pt.tp] += int32(len(pt.recs))
			if err := pt.p.WaitAppended(ctx, res, true); err != nil {
				return abort(s.partitionError(pt.topic, pt.tp.Partition, err))
			}
		}
	}
	commit := len(mismatches) == 0
	if err := s.retryCoordinator(ctx, sl.id, func() error { return co.End(sl.id, sl.pid, sl.epoch, commit) }); err != nil {
		return nil, s.txnError("EndTxn", err)
	}
	if !commit {
		// As a single append's: a refusal read from a deposed leader's
		// stale index is no answer (UNAVAILABLE instead).
		for _, m := range mismatches {
			if err := s.confirmRefusal(ctx, m.part.p, m.epoch); err != nil {
				return nil, err
			}
		}
		return mismatches, nil
	}
	for _, pt := range parts {
		if err := waitStable(ctx, pt.p, pt.res); err != nil {
			return nil, s.partitionError(pt.topic, pt.tp.Partition, err)
		}
	}
	return nil, nil
}

// initSlot gives sl a new epoch of its transactional id (InitProducerId),
// which fences and aborts whatever an earlier use of the slot left open.
// The coordinator of the id must be this node: with lead, this node takes
// that leadership; without (at start), a coordinator elsewhere is left
// for the slot's first call.
func (s *Service) initSlot(ctx context.Context, sl *multiSlot, lead bool) error {
	co := s.cfg.Txn
	// Locate creates __transaction_state on first use, as FindCoordinator does.
	b, err := co.Locate(sl.id)
	if err != nil {
		return s.txnError("FindCoordinator", err)
	}
	if b.NodeID != s.cluster.NodeID() && !lead {
		return fmt.Errorf("the coordinator of %s is node %d", sl.id, b.NodeID)
	}
	var pid int64
	var epoch int16
	err = s.retryCoordinator(ctx, sl.id, func() (err error) {
		pid, epoch, err = co.InitProducerID(sl.id, multiTxnTimeoutMs, -1, -1)
		return err
	})
	if err != nil {
		return s.txnError("InitProducerId", err)
	}
	sl.pid, sl.epoch, sl.seq, sl.ready = pid, epoch, map[txn.TopicPartition]int32{}, true
	return nil
}

// beginOn opens the slot's transaction on pt's partition as the produce
// path does for a Kafka producer's first batch (KIP-890): the coordinator
// confirms the partition is in the transaction.
func (s *Service) beginOn(sl *multiSlot, pt *multiPart) error {
	guard, err := pt.p.VerifyStart(sl.pid)
	if err != nil {
		return s.partitionError(pt.topic, pt.tp.Partition, err)
	}
	if err := s.cfg.Txn.Verify(sl.id, sl.pid, sl.epoch, pt.tp); err != nil {
		pt.p.VerifyAbandon(sl.pid, guard)
		return s.txnError("verify", err)
	}
	if err := pt.p.BeginTransaction(sl.pid, sl.epoch, guard); err != nil {
		return s.partitionError(pt.topic, pt.tp.Partition, err)
	}
	return nil
}

// appendPart writes pt's events as one transactional batch of the slot,
// waiting while another transaction holds the stream.
func (s *Service) appendPart(ctx context.Context, sl *multiSlot, pt *multiPart) (partition.AppendResult, error) {
	numbered := make([]batch.Record, len(pt.recs))
	for i, r := range pt.recs {
		r.Offset = int64(i)
		numbered[i] = r
	}
	tmpl := batch.Header{PartitionLeaderEpoch: -1, ProducerID: sl.pid, ProducerEpoch: sl.epoch, BaseSequence: sl.seq[pt.tp], Attributes: transactionalAttr}
	whole, err := batch.Encode(tmpl, int32(len(numbered)-1), numbered, batch.None)
	if err != nil {
		return partition.AppendResult{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("part %d: %w", pt.index, err))
	}
	var res partition.AppendResult
	err = s.whileBusy(ctx, pt.p, func() error {
		var err error
		res, err = pt.p.Append(slices.Clone(whole))
		return err
	})
	var wrong *streams.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		return res, err
	}
	if err != nil {
		return res, s.partitionError(pt.topic, pt.tp.Partition, err)
	}
	return res, nil
}

// whileBusy calls write until it is not refused because an open
// transaction holds its stream, waiting for p to change between tries, at
// most busyWaitMax.
func (s *Service) whileBusy(ctx context.Context, p *partition.Partition, write func() error) error {
	deadline := s.clock.NewTimer(busyWaitMax)
	defer deadline.Stop()
	for {
		changed := p.Changed()
		err := write()
		if !errors.Is(err, partition.ErrStreamBusy) {
			return err
		}
		select {
		case <-changed:
		case <-deadline.C():
			return connect.NewError(connect.CodeAborted, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retryCoordinator calls f while the coordinator answers that it is busy:
// still ending the slot's previous transaction (its markers being
// written), or loading its state after a start. Before each try this node
// takes the coordinator of id back if it moved (leadCoordinator). It
// tries for at most about ten seconds.
func (s *Service) retryCoordinator(ctx context.Context, id string, f func() error) error {
	const triesMax = 1000
	for try := 1; ; try++ {
		if err := s.leadCoordinator(ctx, id); err != nil {
			return err
		}
		err := f()
		busy := errors.Is(err, txn.ErrConcurrentTransactions) || errors.Is(err, txn.ErrCoordinatorLoadInProgress) ||
			errors.Is(err, txn.ErrNotCoordinator)
		if !busy || try == triesMax {
			return err
		}
		t := s.clock.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// waitStable waits until the marker that ended a part's transaction is
// durable: the partition's last stable offset passed the part's records.
func waitStable(ctx context.Context, p *partition.Partition, res partition.AppendResult) error {
	if res.Duplicate {
		return nil
	}
	for {
		changed := p.Changed()
		if p.LastStableOffset() > res.LastOffset {
			return nil
		}
		if err := p.Err(); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// txnError maps a coordinator's failure: busy or moved coordinators are
// retriable (UNAVAILABLE).
func (s *Service) txnError(step string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, txn.ErrNotCoordinator), errors.Is(err, txn.ErrConcurrentTransactions),
		errors.Is(err, txn.ErrCoordinatorLoadInProgress), errors.Is(err, txn.ErrCoordinatorNotAvailable):
		code = connect.CodeUnavailable
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, fmt.Errorf("AppendMulti %s: %w", step, err))
}

// mismatchError is the FAILED_PRECONDITION answer naming every part whose
// expectation failed, with the stream's actual revision.
func mismatchError(ms []mismatch) error {
	slices.SortFunc(ms, func(a, b mismatch) int { return cmp.Compare(a.part.index, b.part.index) })
	detail := &eventstorev1.WrongExpectedRevisions{}
	var errs []error
	for _, m := range ms {
		w := &eventstorev1.WrongExpectedRevision{Stream: m.wrong.Stream, Expected: expectedProto(m.wrong.Expected)}
		if m.wrong.Actual >= 0 {
			v := uint64(m.wrong.Actual)
			w.ActualRevision = &v
		}
		detail.Parts = append(detail.Parts, &eventstorev1.PartMismatch{Part: uint32(m.part.index), Topic: m.part.topic, Mismatch: w})
		errs = append(errs, fmt.Errorf("part %d (topic %q): %w", m.part.index, m.part.topic, m.wrong))
	}
	e := connect.NewError(connect.CodeFailedPrecondition, errors.Join(errs...))
	if d, err := connect.NewErrorDetail(detail); err == nil {
		e.AddDetail(d)
	}
	return e
}
