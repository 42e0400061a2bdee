package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/internal/backoff"
)

// Handler applies one event to the read model, through tx only. An error
// rolls tx back; the event is tried again, and dead-lettered in the end.
type Handler func(ctx context.Context, tx *sql.Tx, event client.RecordedEvent) error

// Defaults of the options.
const (
	DefaultHandlerAttempts         = 5
	DefaultHandlerBackoffInitial   = 100 * time.Millisecond
	DefaultHandlerBackoffMax       = 5 * time.Second
	DefaultReconnectBackoffInitial = 100 * time.Millisecond
	DefaultReconnectBackoffMax     = 5 * time.Second
	// DeadLetterSuffix makes the default dead-letter topic's name.
	DeadLetterSuffix = ".dlq"
)

type options struct {
	filter          client.Filter
	dialect         Dialect
	handlerAttempts int
	handlerBackoff  backoff.Policy
	reconnect       backoff.Policy
	deadLetterTopic string
	logger          *slog.Logger
	txOptions       *sql.TxOptions
}

// Option configures a Runner.
type Option func(*options)

// WithFilter projects only matching events; the checkpoint still moves past
// the others.
func WithFilter(f client.Filter) Option { return func(o *options) { o.filter = f } }

// WithDialect names the SQL dialect instead of detecting it from the driver.
func WithDialect(d Dialect) Option { return func(o *options) { o.dialect = d } }

// HandlerRetries bounds the attempts at one event (at least 1) and the
// pause between them, which doubles from initial up to max.
func HandlerRetries(attempts int, initial, max time.Duration) Option {
	return func(o *options) {
		o.handlerAttempts = attempts
		o.handlerBackoff = backoff.Policy{Initial: initial, Max: max}
	}
}

// ReconnectBackoff sets the pause before resubscribing after the
// subscription or the database failed, doubling from initial up to max
// while failures repeat.
func ReconnectBackoff(initial, max time.Duration) Option {
	return func(o *options) { o.reconnect = backoff.Policy{Initial: initial, Max: max} }
}

// DeadLetterTopic replaces "<topic>.dlq" as where poison events go.
func DeadLetterTopic(topic string) Option { return func(o *options) { o.deadLetterTopic = topic } }

// WithLogger logs reconnections and dead-lettered events to l instead of
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTxOptions sets the isolation level (or read-only-ness) of the
// handler's transactions.
func WithTxOptions(tx *sql.TxOptions) Option { return func(o *options) { o.txOptions = tx } }

// Runner projects one topic into one database under one projection name.
type Runner struct {
	client  *client.Client
	db      *sql.DB
	name    string
	topic   string
	handler Handler
	opts    options
	store   checkpoints
}

// New returns the runner of projection name over topic.
func New(c *client.Client, db *sql.DB, name, topic string, handler Handler, opts ...Option) (*Runner, error) {
	o := options{
		handlerAttempts: DefaultHandlerAttempts,
		handlerBackoff:  backoff.Policy{Initial: DefaultHandlerBackoffInitial, Max: DefaultHandlerBackoffMax},
		reconnect:       backoff.Policy{Initial: DefaultReconnectBackoffInitial, Max: DefaultReconnectBackoffMax},
		deadLetterTopic: topic + DeadLetterSuffix,
		logger:          slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case c == nil || db == nil || handler == nil:
		return nil, errors.New("projection: needs a client, a database and a handler")
	case name == "" || topic == "":
		return nil, errors.New("projection: needs a name and a topic")
	case o.handlerAttempts < 1:
		return nil, fmt.Errorf("projection %s: %d handler attempts: at least 1", name, o.handlerAttempts)
	case o.deadLetterTopic == "" || o.deadLetterTopic == topic:
		return nil, fmt.Errorf("projection %s: dead-letter topic %q must be named and differ from %q", name, o.deadLetterTopic, topic)
	}
	if o.dialect == DialectAuto {
		d, err := DetectDialect(db)
		if err != nil {
			return nil, err
		}
		o.dialect = d
	}
	return &Runner{client: c, db: db, name: name, topic: topic, handler: handler, opts: o, store: checkpoints{dialect: o.dialect, projection: name}}, nil
}

// Checkpoints returns the stored next offset of each partition the
// projection has passed through.
func (r *Runner) Checkpoints(ctx context.Context) ([]client.Position, error) {
	if err := r.store.create(ctx, r.db); err != nil {
		return nil, err
	}
	return r.store.load(ctx, r.db)
}

// interruptedMessage is logged each time a session ends in a failure.
const interruptedMessage = "projection interrupted; resuming from its checkpoints"

// waitingForTopicMessage is logged, at debug level, while the topic does not
// exist yet.
const waitingForTopicMessage = "projection waiting for its topic to be created"

// fatal reports errors that waiting will not cure: the request itself is
// wrong (a bad filter, a topic that is not an event store).
func fatal(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodePermissionDenied,
		connect.CodeUnauthenticated, connect.CodeUnimplemented:
		return true
	}
	return false
}

// Run projects until ctx ends, then returns nil. It returns an error only
// when the subscription is refused for good (an invalid filter, a topic
// that is not an event store). Every other failure — the server restarting,
// the database unreachable — is logged, waited out with growing pauses,
// and resumed from the stored checkpoints. A topic that does not exist yet
// is nothing to project so far: it is waited for the same way, logged only
// at debug level.
func (r *Runner) Run(ctx context.Context) error {
	failures := 0
	for {
		progressed, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			return fmt.Errorf("projection %s of %s: %w", r.name, r.topic, err)
		}
		if progressed {
			failures = 0
		}
		failures++
		pause := r.opts.reconnect.Pause(failures)
		if errors.Is(err, client.ErrTopicNotFound) {
			// Nothing was written yet: the first append creates the
			// topic. Not a failure worth a warning.
			r.opts.logger.Debug(waitingForTopicMessage, "projection", r.name, "topic", r.topic, "retry_in", pause)
		} else {
			r.opts.logger.Warn(interruptedMessage, "projection", r.name, "topic", r.topic, "err", err, "retry_in", pause)
		}
		if backoff.Sleep(ctx, pause) != nil {
			return nil
		}
	}
}

// session subscribes from the stored checkpoints and projects until
// something fails. progressed says whether the subscription delivered
// anything, which resets the reconnection backoff.
func (r *Runner) session(ctx context.Context) (progressed bool, err error) {
	if err := r.store.create(ctx, r.db); err != nil {
		return false, err
	}
	from, err := r.store.load(ctx, r.db)
	if err != nil {
		return false, err
	}
	opts := []client.ReadOption{client.WithFilter(r.opts.filter)}
	if len(from) > 0 {
		opts = append(opts, client.FromPositions(from...))
	}
	sub, err := r.client.Subscribe(ctx, r.topic, "", opts...)
	if err != nil {
		return false, err
	}
	defer sub.Close()
	for {
		m, err := sub.Recv()
		if err != nil {
			return progressed, err
		}
		switch m.Kind {
		case client.MessageEvent:
			err = r.project(ctx, m.Event)
		case client.MessageCheckpoint:
			err = r.storeCheckpoints(ctx, m.Positions)
		case client.MessageCaughtUp:
			r.opts.logger.Debug("projection caught up", "projection", r.name, "topic", r.topic)
		}
		if err != nil {
			return progressed, err
		}
		progressed = true
	}
}

// handlerError marks a failure of the handler (as opposed to the
// database's or the server's), which counts towards dead-lettering.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// project applies ev, retrying the handler's failures and dead-lettering
// the event after the last one. Other errors end the session.
func (r *Runner) project(ctx context.Context, ev client.RecordedEvent) error {
	var last error
	attempt := 1
	for ; ; attempt++ {
		err := r.applyOnce(ctx, ev)
		if err == nil {
			return nil
		}
		var herr *handlerError
		if ctx.Err() != nil || !errors.As(err, &herr) {
			return err
		}
		last = herr.err
		if attempt >= r.opts.handlerAttempts {
			break
		}
		pause := r.opts.handlerBackoff.Pause(attempt)
		r.opts.logger.Warn("projection handler failed; retrying", "projection", r.name, "event", ev.Position.String(),
			"type", ev.Type, "attempt", attempt, "err", last, "retry_in", pause)
		if err := backoff.Sleep(ctx, pause); err != nil {
			return err
		}
	}
	// A database that went away fails every handler; that is no reason to
	// give up on the event.
	if err := r.db.PingContext(ctx); err != nil {
		return fmt.Errorf("projection %s: database unreachable after the handler failed: %w", r.name, err)
	}
	return r.deadLetter(ctx, ev, last, attempt)
}

// applyOnce runs the handler and moves the checkpoint past ev in one
// transaction. An event the checkpoint is already past is skipped.
func (r *Runner) applyOnce(ctx context.Context, ev client.RecordedEvent) error {
	tx, err := r.db.BeginTx(ctx, r.opts.txOptions)
	if err != nil {
		return fmt.Errorf("projection %s: begin: %w", r.name, err)
	}
	defer tx.Rollback() // undoes everything unless Commit ran first
	next := client.Position{Partition: ev.Position.Partition, Offset: ev.Position.Offset + 1}
	moved, err := r.store.advance(ctx, tx, next)
	if err != nil || !moved {
		return err
	}
	if err := r.handler(ctx, tx, ev); err != nil {
		return &handlerError{err: err}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: commit event %s: %w", r.name, ev.Position, err)
	}
	return nil
}

// storeCheckpoints moves checkpoints to positions, in one transaction.
func (r *Runner) storeCheckpoints(ctx context.Context, positions []client.Position) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: begin: %w", r.name, err)
	}
	defer tx.Rollback() // undoes everything unless Commit ran first
	for _, p := range positions {
		if _, err := r.store.advance(ctx, tx, p); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: commit checkpoints: %w", r.name, err)
	}
	return nil
}
