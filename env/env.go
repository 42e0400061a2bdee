package env

import (
	"log/slog"

	"github.com/cairnlog/cairn/storage/vfs"
)

// Env is everything a node takes from the world outside its own code.
// Components keep the Env they were opened with and never fall back to the
// real clock, randomness or filesystem on their own.
type Env struct {
	Clock  Clock
	Rand   *Rand
	FS     vfs.FS
	Logger *slog.Logger
}

// Real is the production environment: the wall clock, randomness seeded
// from the operating system, the operating system's filesystem and the
// default logger.
func Real() Env { return Env{}.Complete() }

// Complete returns e with each unset field taken from the real world, for
// configurations whose zero value means "the real world".
func (e Env) Complete() Env {
	if e.Clock == nil {
		e.Clock = RealClock()
	}
	if e.Rand == nil {
		e.Rand = NewRealRand()
	}
	if e.FS == nil {
		e.FS = vfs.Default()
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	return e
}

// Check reports the first unset field: a component opened with a partial
// Env would otherwise fail later, far from the mistake.
func (e Env) Check() error {
	switch {
	case e.Clock == nil:
		return errMissing("clock")
	case e.Rand == nil:
		return errMissing("rand")
	case e.FS == nil:
		return errMissing("filesystem")
	case e.Logger == nil:
		return errMissing("logger")
	}
	return nil
}

type errMissing string

func (e errMissing) Error() string { return "env: no " + string(e) }
