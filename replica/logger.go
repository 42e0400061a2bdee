package replica

import (
	"fmt"
	"log/slog"
	"os"
)

// raftLogger hands raft's log lines to the node's slog logger, tagged with
// the group and replica. raft logs state changes at Info; they go to Debug
// here, as with thousands of groups they would drown everything else.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }

// Fatal is raft's "cannot continue": logged, then the process exits as
// raft's default logger does.
func (r raftLogger) Fatal(v ...any) { r.l.Error(fmt.Sprint(v...)); os.Exit(1) }
func (r raftLogger) Fatalf(format string, v ...any) {
	r.l.Error(fmt.Sprintf(format, v...))
	os.Exit(1)
}
func (r raftLogger) Panic(v ...any) { s := fmt.Sprint(v...); r.l.Error(s); panic(raftPanic(s)) }
func (r raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	r.l.Error(s)
	panic(raftPanic(s))
}

// raftPanic is what raft panics with through this logger: typed, so that
// Replica.lost can tell raft's own "commit past the log's end" and failed
// log reads from any other panic, which it lets through.
type raftPanic string
