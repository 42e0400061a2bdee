package server

import (
	"context"
	"errors"
	"log/slog"
)

// Run serves until ctx is done, then shuts down cleanly.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	_ = logger
	<-ctx.Done()
	return errors.New("server: not wired yet")
}
