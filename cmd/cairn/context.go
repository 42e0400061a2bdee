package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// errTimedOut is the cause of a command context whose --timeout passed.
var errTimedOut = errors.New("timed out")

// commandContext returns cmd's context, ended by SIGINT or SIGTERM or after
// timeout, so that no client command outlives Ctrl-C or its --timeout however
// the cluster behaves. context.Cause names which one ended it; stopError
// turns that into the command's error.
func commandContext(cmd *cobra.Command, timeout time.Duration) (context.Context, context.CancelFunc) {
	interrupted, stop := interruptContext(cmd.Context())
	ctx, cancel := context.WithTimeoutCause(interrupted, timeout,
		fmt.Errorf("%w after %s", errTimedOut, timeout))
	return ctx, func() {
		cancel()
		stop()
	}
}

// interruptContext returns a context that SIGINT (Ctrl-C) or SIGTERM ends.
// Once a signal has ended it, its cancel leaves both signals ignored: the
// command is on its way out, and a second copy of the signal (GNU timeout
// sends it to the command and then to its whole process group) must not
// kill it with the default action, exit status 130, after it stopped
// cleanly.
func interruptContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	return ctx, func() {
		if ctx.Err() != nil && parent.Err() == nil {
			signal.Ignore(os.Interrupt, syscall.SIGTERM) // before stop: no moment with the default action
		}
		stop()
	}
}

// stopError explains an error that ctx's end caused: "interrupted
// (interrupt signal received): ..." or "timed out after 30s: ...", instead
// of a bare "context canceled". Other errors pass unchanged.
func stopError(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, errTimedOut) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return fmt.Errorf("interrupted (%w): %w", cause, err)
}
